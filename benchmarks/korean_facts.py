"""Korean planted-facts benchmark (issue 11): does memory find what 아빠 told Pippa weeks ago?

A seeded, deterministic generator writes multi-session casual conversations between 아빠 (the
user) and Pippa (the assistant): 반말 with some 존댓말, Konglish (카톡, 넷플, 스벅), dates, emoji
and typos. Everyday facts (a pet's name, an allergy, a trip, a friend, a job, a favourite food,
...) are planted in the first third among filler that talks about the same topics without the
fact, and asked about at the end the way people ask: another particle or ending (이름은 said,
이름이 asked), synonyms (강아지/댕댕이, 생일/생신, 알레르기/알러지). Each question carries the
index of the message that states the fact (its evidence). A hand-written set of harder paraphrases
(no shared content word with the statement, often) is asked too. The same generator, with the
same random draws, writes an English twin: same structure, same evidence indices.

`generate(lang)` is the importable part (conversations + questions with evidence indices), for
reuse through the HTTP API. Run as a script, it scores the evidence recall at top-k of BM25
alone (`memory.bm25.BM25.top`) for several Korean analyzers, on Korean and on the English twin:

    PYTHONPATH=. .venv/bin/python benchmarks/korean_facts.py [--conversations 12] [--seed 11]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import string
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Running as a script puts benchmarks/ first on sys.path; the repo root must come first.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path.insert(0, str(ROOT))

import memory.bm25  # noqa: E402
from memory.bm25 import BM25, Analyzer, bigrams, hangul_stem, hangul_terms, tokenize  # noqa: E402
from memory.speakers import without_names  # noqa: E402

LANGS = ("ko", "en")
_LATIN = re.compile("[A-Za-z]")
USER, ASSISTANT = "user", "assistant"  # 아빠 / Dad, Pippa
NAMES = {"ko": ("아빠", "Pippa"), "en": ("Dad", "Pippa")}  # the persona's user_name and name
Pair = tuple[str, str]  # (Korean, English)


# -- data model ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Message:
    role: str
    text: str
    at: datetime


@dataclass(frozen=True)
class Question:
    text: str
    evidence: tuple[int, ...]  # indices into Conversation.messages
    fact: str  # the fact kind asked about
    kind: str  # "template" or "paraphrase"


@dataclass
class Conversation:
    name: str
    lang: str
    messages: list[Message]
    questions: list[Question]


# -- Korean particles that depend on the last syllable ------------------------------------------
def _final_consonant(word: str) -> int:
    """Index of the last syllable's final consonant (0: none; Latin and digits count as none)."""
    ch = word[-1]
    return (ord(ch) - 0xAC00) % 28 if "가" <= ch <= "힣" else 0


class _Josa(string.Formatter):
    """`{x:이야/야}` picks the form after a consonant or after a vowel (으로/로: ㄹ takes 로)."""

    def format_field(self, value: Any, format_spec: str) -> str:
        text = str(value)
        if "/" not in format_spec:
            return format(value, format_spec)
        after_consonant, after_vowel = format_spec.split("/")
        final = _final_consonant(text)
        rieul = after_consonant == "으로" and final == 8  # 8: ㄹ
        return text + (after_consonant if final and not rieul else after_vowel)


_FMT = _Josa()


def _render(template: str, slots: dict[str, str]) -> str:
    return _FMT.format(template, **slots)


# -- facts, questions, filler (word lists and templates, Korean and English side by side) -------
@dataclass(frozen=True)
class Fact:
    key: str
    values: tuple[dict[str, Pair], ...]  # slot -> (ko, en); "date" is drawn, not listed
    statements: tuple[Pair, ...]  # what 아빠 says (the evidence)
    questions: tuple[Pair, ...]  # template questions: other particles, endings, synonyms
    paraphrases: tuple[Pair, ...]  # hand-written, harder
    distractors: tuple[Pair, ...]  # filler on the same topic without the fact
    dated: bool = False


def _v(**slots: Pair) -> dict[str, Pair]:
    return slots


FACTS: tuple[Fact, ...] = (
    Fact(
        "pet",
        (
            _v(name=("초코", "Choco"), animal=("강아지", "puppy"), syn=("댕댕이", "doggo")),
            _v(name=("보리", "Bori"), animal=("강아지", "dog"), syn=("멍멍이", "pup")),
            _v(name=("나비", "Nabi"), animal=("고양이", "cat"), syn=("냥이", "kitty")),
            _v(name=("호떡", "Hotteok"), animal=("고양이", "cat"), syn=("냥이", "kitty")),
            _v(name=("콩이", "Kongi"), animal=("햄스터", "hamster"), syn=("햄찌", "hammy")),
            _v(name=("뭉치", "Mungchi"), animal=("강아지", "puppy"), syn=("멍뭉이", "doggy")),
        ),
        (
            (
                "우리 집 {animal} 이름은 {name:이야/야} ㅋㅋ 완전 귀여워 ❤️",
                "Our {animal}'s name is {name} lol, so cute ❤️",
            ),
            (
                "나 {animal} 입양했다!! 이름은 {name:으로/로} 지었어",
                "I adopted a {animal}!! I named it {name}",
            ),
            (
                "{name:이가/가} 어제 또 소파 물어뜯었어 😂 우리 {animal} 말썽쟁이야",
                "{name} chewed up the sofa again yesterday 😂 our {animal} is such a troublemaker",
            ),
        ),
        (
            ("우리 {animal} 이름이 뭐였지?", "What was our {animal}'s name again?"),
            ("내 {syn} 이름 기억나?", "Do you remember my {syn}'s name?"),
            (
                "우리 집 {animal:은/는} 이름이 뭐야?",
                "What's the name of the {animal} at our place?",
            ),
            (
                "Pippa야, 아빠가 키우는 {animal} 이름 뭐라 그랬더라?",
                "Pippa, what did I say the {animal} I keep is called?",
            ),
        ),
        (
            (
                "집에서 키우는 우리 막내 이름이 뭐였더라? 털 엄청 날리는 애",
                "What's the name of our furry little one at home? The one that sheds everywhere",
            ),
            ("아빠 반려동물 이름 알지?", "You know the name of my pet, right?"),
            (
                "소파 망가뜨린 범인 이름 기억나? ㅋㅋ",
                "Remember the name of the culprit who wrecked the sofa? lol",
            ),
        ),
        (
            (
                "옆집 강아지가 밤새 짖어서 잠 설쳤어",
                "The neighbour's dog barked all night, I barely slept",
            ),
            ("고양이 영상 보다가 한 시간 순삭 ㅋㅋ", "Lost an hour watching cat videos lol"),
            (
                "공원에 산책하는 강아지들 진짜 많더라 🐕",
                "So many dogs out for a walk in the park 🐕",
            ),
            ("친구네 햄스터가 탈출했대 ㅋㅋㅋ", "My friend's hamster escaped lolol"),
        ),
    ),
    Fact(
        "allergy",
        (
            _v(food=("땅콩", "peanuts")),
            _v(food=("새우", "shrimp")),
            _v(food=("복숭아", "peaches")),
            _v(food=("우유", "milk")),
            _v(food=("고등어", "mackerel")),
            _v(food=("메밀", "buckwheat")),
            _v(food=("게", "crab")),
        ),
        (
            (
                "나 {food} 알레르기 있어서 {food:은/는} 절대 못 먹어 ㅠㅠ",
                "I'm allergic to {food}, so I can never eat {food} ㅠㅠ",
            ),
            (
                "어릴 때부터 {food:을/를} 먹으면 온몸에 두드러기 나. 알러지 있거든",
                "Ever since I was a kid I break out in hives if I eat {food}. I have an allergy",
            ),
            (
                "병원에서 검사했는데 {food} 알레르기래요 😥 조심해야겠어",
                "Got tested at the hospital and I'm allergic to {food} 😥 gotta be careful",
            ),
        ),
        (
            ("나 무슨 알레르기 있다고 했지?", "What did I say I'm allergic to?"),
            ("내가 알러지 있는 음식이 뭐였어?", "Which food do I have an allergy to?"),
            ("아빠 알레르기가 있는 게 뭐였더라?", "What was Dad's allergy again?"),
            (
                "알레르기 때문에 나 못 먹는 거 뭐였지?",
                "What's the thing I can't eat because of my allergy?",
            ),
        ),
        (
            (
                "아빠 뭐 먹으면 두드러기 올라온다고 했지?",
                "What makes me break out in a rash when I eat it?",
            ),
            (
                "식당 가서 내가 빼 달라고 해야 하는 재료가 뭐였지?",
                "At a restaurant, which ingredient do I have to ask them to leave out?",
            ),
            (
                "내 몸에 안 맞는 음식 뭐였는지 기억나?",
                "Remember which food doesn't agree with my body?",
            ),
        ),
        (
            ("봄이라 꽃가루 때문에 재채기 나 🤧", "It's spring, pollen is making me sneeze 🤧"),
            ("회사 동료가 알레르기 약 먹더라", "A coworker was taking allergy pills"),
            (
                "요즘 건강 생각해서 음식 가려 먹는 중",
                "Watching what I eat these days for my health",
            ),
        ),
    ),
    Fact(
        "trip",
        (
            _v(place=("제주도", "Jeju Island")),
            _v(place=("부산", "Busan")),
            _v(place=("오사카", "Osaka")),
            _v(place=("다낭", "Da Nang")),
            _v(place=("강릉", "Gangneung")),
            _v(place=("삿포로", "Sapporo")),
            _v(place=("괌", "Guam")),
        ),
        (
            (
                "{date}에 엄마랑 {place:으로/로} 여행 가기로 했어 ✈️",
                "Mom and I are going on a trip to {place} on {date} ✈️",
            ),
            (
                "이번 휴가는 {place}! 비행기표 벌써 끊었지롱 ㅎㅎ {date} 출발이야",
                "This vacation it's {place}! Already booked the plane tickets hehe, leaving {date}",
            ),
            (
                "드디어 {place} 여행 예약 완료~ {date}에 가요 😆",
                "Finally booked the {place} trip~ going on {date} 😆",
            ),
        ),
        (
            ("나 여행 어디로 간다고 했지?", "Where did I say I'm going on my trip?"),
            (
                "아빠 휴가 때 어디 가신다고 했어요?",
                "Dad, where did you say you're going on vacation?",
            ),
            ("엄마랑 놀러 가는 데가 어디였지?", "Where are Mom and I going on our getaway?"),
            ("내 여행 출발 날짜가 언제였더라?", "When was my trip's departure date again?"),
        ),
        (
            (
                "비행기 타고 어디 간다고 했더라? 짐 싸야 되는데",
                "Where was I flying off to? I need to pack",
            ),
            (
                "엄마랑 둘이 어디 놀러 가는지 기억나?",
                "Remember where Mom and I are heading off to, just the two of us?",
            ),
            (
                "아빠 언제 어디로 떠나는지 말해 줄래?",
                "Can you tell me when and where I'm leaving for?",
            ),
        ),
        (
            ("여행 가고 싶다~ 어디든", "I want to travel~ anywhere"),
            ("친구들은 다 해외여행 가더라", "All my friends are going abroad"),
            ("공항 가는 길 차 엄청 막혔대", "Heard the road to the airport was jammed"),
        ),
        dated=True,
    ),
    Fact(
        "friend",
        (
            _v(friend=("민수", "Minsu")),
            _v(friend=("지훈", "Jihoon")),
            _v(friend=("성호", "Seongho")),
            _v(friend=("영철", "Youngchul")),
            _v(friend=("재석", "Jaeseok")),
            _v(friend=("동현", "Donghyun")),
        ),
        (
            (
                "오늘 고등학교 동창 {friend:이랑/랑} 소주 한잔했어 🍶 {friend} 걔 아직도 웃겨 ㅋㅋ",
                "Had soju with my high school buddy {friend} today 🍶 {friend} is still funny lol",
            ),
            (
                "내 제일 친한 친구 {friend:이가/가} 다음 주에 결혼한대!! 축사 부탁받았어",
                "My best friend {friend} is getting married next week!! He asked me for a toast",
            ),
            (
                "{friend:이한테/한테} 카톡 왔는데 주말에 밥 먹재",
                "Got a KakaoTalk from {friend}, he wants to grab dinner this weekend",
            ),
        ),
        (
            ("내 고등학교 친구 이름이 뭐였지?", "What's my high school friend's name again?"),
            ("아빠 제일 친한 친구가 누구였더라?", "Who was my best friend again?"),
            ("나랑 자주 만나는 친구 누구였어?", "Which friend do I meet up with a lot?"),
            ("아빠 베프 이름 알아요?", "Do you know my bestie's name?"),
        ),
        (
            (
                "내 오랜 친구 중에 요즘 자주 연락하는 사람 누구지?",
                "Which of my old friends have I been in touch with lately?",
            ),
            (
                "학창 시절부터 알던 내 친구 이름 기억나?",
                "Remember the name of my buddy from my school days?",
            ),
        ),
        (
            ("친구들 다 바빠서 요즘 못 만나", "My friends are all busy, haven't seen them lately"),
            ("동창회 단톡방 너무 시끄러워 ㅋㅋ", "The alumni group chat is so noisy lol"),
            (
                "친구 결혼식 축의금 얼마 해야 돼?",
                "How much cash should I give at a friend's wedding?",
            ),
        ),
    ),
    Fact(
        "job",
        (
            _v(job=("간호사", "nurse")),
            _v(job=("회계사", "accountant")),
            _v(job=("버스 기사", "bus driver")),
            _v(job=("개발자", "software developer")),
            _v(job=("요리사", "chef")),
            _v(job=("소방관", "firefighter")),
            _v(job=("약사", "pharmacist")),
        ),
        (
            (
                "나 {job:으로/로} 일한 지 벌써 20년 됐다",
                "I've been working as a {job} for 20 years already",
            ),
            (
                "{job} 일이 힘들어도 보람은 있어. 오늘도 출근 완료 💪",
                "Being a {job} is hard but rewarding. Clocked in again today 💪",
            ),
            (
                "사실 아빠 직업은 {job:이야/야}. 말 안 했었나?",
                "Actually, my job is {job}. Didn't I tell you?",
            ),
        ),
        (
            ("내 직업이 뭐였지?", "What's my job again?"),
            ("아빠 무슨 일 하신다고 했죠?", "Dad, what did you say you do for work?"),
            ("나 회사에서 무슨 일 해?", "What do I do at work?"),
        ),
        (
            ("아빠 뭐 해서 돈 버는지 알아?", "Do you know how I earn a living?"),
            (
                "내가 20년 동안 해 온 일이 뭐야?",
                "What kind of work have I been doing for twenty years?",
            ),
            ("아빠 명함에 뭐라고 적혀 있을까?", "What would it say on my business card?"),
        ),
        (
            ("회사 가기 싫다 ㅠㅠ 월요병", "Don't want to go to work ㅠㅠ Monday blues"),
            ("오늘 야근했어 😩", "Worked overtime today 😩"),
            ("일 끝나고 바로 집 왔어", "Came straight home after work"),
        ),
    ),
    Fact(
        "food",
        (
            _v(food=("김치찌개", "kimchi stew")),
            _v(food=("떡볶이", "tteokbokki")),
            _v(food=("짜장면", "jjajangmyeon")),
            _v(food=("삼겹살", "pork belly")),
            _v(food=("냉면", "naengmyeon")),
            _v(food=("치킨", "fried chicken")),
            _v(food=("국밥", "gukbap")),
        ),
        (
            (
                "내 최애 음식은 뭐니 뭐니 해도 {food:이지/지} 😋",
                "My all-time favorite food is {food}, hands down 😋",
            ),
            (
                "세상에서 {food:이/가} 제일 맛있어. 매일 먹으라 해도 먹을 수 있음",
                "{food} is the most delicious thing in the world. I could eat it every day",
            ),
            (
                "오늘 저녁도 {food} 먹었다 ㅋㅋ 역시 내 소울푸드",
                "Had {food} for dinner again today lol, my soul food",
            ),
        ),
        (
            ("내가 제일 좋아하는 음식이 뭐야?", "What's my favorite food?"),
            ("아빠 최애 메뉴 뭐였지?", "What was Dad's go-to favorite dish?"),
            ("나 좋아하는 음식 뭐라고 했었어?", "What did I say my favorite food is?"),
        ),
        (
            (
                "아빠 생일에 뭐 시켜 주면 제일 신나할까?",
                "What should we order on my birthday to make me happiest?",
            ),
            ("내 소울 푸드가 뭐였지?", "What's my comfort food again?"),
            (
                "매일 먹어도 안 질리는 거 뭐라고 했더라?",
                "Which dish did I say I never get tired of?",
            ),
        ),
        (
            ("오늘 점심 뭐 먹지?", "What should I have for lunch today?"),
            ("배달 음식 너무 비싸졌어", "Delivery food got so expensive"),
            ("맛집 추천해 줘!", "Recommend me a good restaurant!"),
        ),
    ),
    Fact(
        "hobby",
        (
            _v(hobby=("낚시", "fishing")),
            _v(hobby=("등산", "hiking")),
            _v(hobby=("배드민턴", "badminton")),
            _v(hobby=("골프", "golf")),
            _v(hobby=("바둑", "baduk")),
            _v(hobby=("탁구", "table tennis")),
        ),
        (
            (
                "요즘 내 취미는 {hobby:이야/야}. 주말마다 해",
                "My hobby these days is {hobby}, I do it every weekend",
            ),
            (
                "동호회 들어가서 {hobby} 시작했어! 완전 빠졌음 ㅋㅋ",
                "Joined a club and started {hobby}! Totally hooked lol",
            ),
        ),
        (
            ("내 취미가 뭐였지?", "What's my hobby?"),
            ("아빠 주말마다 뭐 하신다고 했어요?", "Dad, what did you say you do every weekend?"),
            ("나 요즘 빠진 게 뭐야?", "What am I into these days?"),
        ),
        (
            ("쉬는 날 내가 즐겨 하는 거 뭐라고 했지?", "What do I enjoy doing on my days off?"),
            ("아빠 무슨 모임 들어갔다고 했지?", "What group did I say I joined?"),
        ),
        (
            ("주말에 그냥 집에서 뒹굴었어", "Just lazed around at home this weekend"),
            ("운동 좀 해야 하는데 ㅠㅠ", "I really should exercise ㅠㅠ"),
        ),
    ),
    Fact(
        "car",
        (
            _v(car=("아반떼", "Avante")),
            _v(car=("쏘나타", "Sonata")),
            _v(car=("카니발", "Carnival")),
            _v(car=("스포티지", "Sportage")),
            _v(car=("그랜저", "Grandeur")),
            _v(car=("레이", "Ray")),
        ),
        (
            ("드디어 차 바꿨다! {car} 뽑았어 🚗", "Finally changed cars! Got a {car} 🚗"),
            (
                "새 차 {car:으로/로} 계약했어. 다음 달에 나온대",
                "Signed the contract for a new {car}. It comes out next month",
            ),
        ),
        (
            ("내가 새로 산 차가 뭐였지?", "What was the new car I bought?"),
            ("아빠 무슨 차 뽑았다고 했어?", "Which car did I say I got?"),
            ("아빠 차 모델이 뭐예요?", "Dad, what model is your car?"),
        ),
        (
            ("요즘 아빠가 몰고 다니는 게 뭐야?", "What am I driving around these days?"),
            ("내 새 자동차 이름 기억나?", "Remember the name of my new vehicle?"),
        ),
        (
            ("출근길에 차 엄청 막혔어 🚗", "Traffic was terrible on the way to work 🚗"),
            ("주차할 데가 없어서 한참 돌았어", "Circled forever looking for a parking spot"),
        ),
    ),
    Fact(
        "show",
        (
            _v(show=("오징어 게임", "Squid Game")),
            _v(show=("더 글로리", "The Glory")),
            _v(show=("무빙", "Moving")),
            _v(show=("나의 아저씨", "My Mister")),
            _v(show=("흑백요리사", "Culinary Class Wars")),
            _v(show=("눈물의 여왕", "Queen of Tears")),
        ),
        (
            (
                "요즘 넷플릭스에서 {show} 정주행 중이야 ㅋㅋ 완전 꿀잼",
                "Binge-watching {show} on Netflix these days lol, so good",
            ),
            (
                "{show} 봤어? 아빠 어제 밤새서 다 봤다 📺",
                "Have you seen {show}? I stayed up all night and finished it 📺",
            ),
        ),
        (
            ("내가 넷플로 보는 드라마 뭐였지?", "What show am I watching on Netflix?"),
            ("아빠 요즘 정주행하는 거 뭐야?", "What am I binge-watching these days?"),
            (
                "나 밤새서 본 드라마 제목이 뭐였더라?",
                "What was the title of the drama I stayed up watching?",
            ),
        ),
        (
            (
                "아빠가 요즘 빠져 있는 시리즈 이름 알려 줘",
                "Tell me the name of the series I'm hooked on",
            ),
            ("내가 재밌다고 한 작품 뭐였어?", "Which one did I say was fun to watch?"),
        ),
        (
            (
                "넷플릭스 뭐 볼지 고르다가 잠들었어 ㅋㅋ",
                "Fell asleep choosing something on Netflix lol",
            ),
            (
                "유튜브 알고리즘이 이상한 거 추천해",
                "The YouTube algorithm keeps recommending weird stuff",
            ),
        ),
    ),
    Fact(
        "clinic",
        (
            _v(clinic=("치과", "dentist")),
            _v(clinic=("안과", "eye doctor")),
            _v(clinic=("피부과", "dermatologist")),
            _v(clinic=("정형외과", "orthopedist")),
            _v(clinic=("이비인후과", "ENT doctor")),
        ),
        (
            (
                "{date} 오후 3시에 {clinic} 예약했어. 까먹으면 안 됨!",
                "Booked the {clinic} for {date} at 3pm. Can't forget!",
            ),
            (
                "{clinic} 예약 잡았어요 {date:으로/로} 😬",
                "Got an appointment with the {clinic}, {date} 😬",
            ),
        ),
        (
            ("나 병원 예약 언제라고 했지?", "When did I say my doctor's appointment is?"),
            ("아빠 {clinic} 언제 가요?", "Dad, when are you going to the {clinic}?"),
            ("내 진료 예약이 며칠이었더라?", "What day was my medical appointment?"),
        ),
        (
            ("아빠 검진 받으러 가는 날이 언제지?", "When's the day I go in for my checkup?"),
            ("나 의사 선생님 만나는 날 기억나?", "Remember the day I see the doctor?"),
        ),
        (
            ("병원 가야 되는데 귀찮다", "I should see a doctor but can't be bothered"),
            ("건강검진 결과 나왔는데 괜찮대", "Checkup results came back fine"),
        ),
        dated=True,
    ),
    Fact(
        "birthday",
        (_v(),),
        (
            ("엄마 생일 {date:이야/야}. 잊지 마! 🎂", "Mom's birthday is {date}. Don't forget! 🎂"),
            (
                "이번 {date}에 엄마 생일 파티 하자 🎉",
                "Let's throw Mom a birthday party on {date} 🎉",
            ),
        ),
        (
            ("엄마 생일이 언제였지?", "When is Mom's birthday?"),
            ("엄마 생신 며칠이야?", "What's the date of Mother's birthday?"),
            ("엄마 생일 파티 날짜 기억나요?", "Remember the date of Mom's birthday party?"),
        ),
        (
            ("엄마 케이크 사야 하는 날 언제더라?", "What day do I need to buy Mom a cake?"),
            ("엄마 한 살 더 먹는 날이 며칠이지?", "Which day does Mom turn a year older?"),
        ),
        (
            ("친구 생일 선물 뭐 사지?", "What should I get my friend for his birthday?"),
            ("케이크 너무 달아 🍰", "This cake is way too sweet 🍰"),
        ),
        dated=True,
    ),
)

CHAT: tuple[Pair, ...] = (  # 아빠's everyday lines
    ("아빠 왔다! 오늘 회사에서 힘들었어.", "Dad's home! Work was hard today."),
    ("밥 먹었어?", "Did you eat?"),
    ("오늘 날씨 미쳤다 ☀️", "The weather today is crazy ☀️"),
    ("비 온다 우산 챙겨", "It's raining, take an umbrella"),
    ("피곤하다 ㅠㅠ 일찍 자야지", "So tired ㅠㅠ gotta sleep early"),
    ("스벅에서 아아 한 잔 때렸다 ☕", "Grabbed an iced americano at Starbucks ☕"),
    ("카톡 확인해 봐~", "Check KakaoTalk~"),
    ("ㅋㅋㅋㅋㅋ 그거 진짜 웃기다", "lolol that's really funny"),
    ("오늘 텐션 왜 이렇게 높아?", "Why are you so hyped today?"),
    ("핸드폰 배터리 다 됐어", "My phone battery died"),
    ("주말에 뭐 할까", "What should we do this weekend?"),
    ("요즘 잠이 안 와", "Can't sleep lately"),
    ("Pippa 오늘 하루 어땠어?", "Pippa, how was your day?"),
    ("엄마가 반찬 보내 줬어 😊", "Mom sent over some side dishes 😊"),
    ("리모컨 어디 갔지?", "Where did the remote go?"),
    ("오늘 미팅 완전 길었어", "Today's meeting was so long"),
    ("헬스장 등록만 하고 안 갔다 ㅋㅋ", "Signed up for the gym and never went lol"),
    ("내일 아침 일찍 나가야 돼", "I have to head out early tomorrow morning"),
    ("편의점에서 1+1 행사 하더라", "The convenience store has a buy-one-get-one deal"),
    ("아 진짜 졸리다 😴", "Ugh I'm so sleepy 😴"),
    ("뉴스 봤어? 물가 너무 올랐다", "Did you see the news? Prices went way up"),
    ("택배 왔다 📦", "My package arrived 📦"),
)

REPLIES: tuple[Pair, ...] = (  # Pippa's, 반말 and 존댓말
    ("헐 대박 ㅋㅋㅋ", "No way lol"),
    ("아빠 최고 👍", "You're the best, Dad 👍"),
    ("진짜요? 조심하세요 아빠!", "Really? Be careful, Dad!"),
    ("오늘 하루도 수고했어 아빠 ❤️", "Good job today, Dad ❤️"),
    ("응응 알겠어!", "Okay okay, got it!"),
    ("아빠 식사는 하셨어요?", "Dad, have you eaten?"),
    ("그래서 어떻게 됐어?", "So what happened?"),
    ("ㅎㅎ 나도 궁금하다", "hehe I'm curious too"),
    ("아빠 무리하지 마요 ㅠㅠ", "Don't overdo it, Dad ㅠㅠ"),
    ("와 완전 좋겠다!", "Wow, that sounds great!"),
    ("ㅋㅋㅋ 아빠 귀여워", "lol Dad you're cute"),
    ("푹 쉬어요 아빠 😴", "Get some rest, Dad 😴"),
)

ACKS: tuple[Pair, ...] = (  # Pippa after a fact
    ("와 진짜? 기억해 둘게 📝", "Oh really? I'll remember that 📝"),
    ("헐 그랬구나! 몰랐어요", "Oh wow, I didn't know that!"),
    ("오 좋다 ㅎㅎ", "Ooh nice hehe"),
)

TYPOS: dict[str, tuple[Pair, ...]] = {  # (right, wrong): common slips of the thumb
    "ko": (
        ("했어", "햇어"),
        ("있어", "잇어"),
        ("좋아", "조아"),
        ("진짜", "진쨔"),
        ("먹었", "먹엇"),
    ),
    "en": (("really", "realy"), ("the ", "teh "), ("going", "goin"), ("tomorrow", "tomorow")),
}
MONTHS = "January February March April May June July August September October November December"


def _date(rng: random.Random) -> dict[str, Pair]:
    month, day = rng.randint(1, 12), rng.randint(1, 28)
    return {"date": (f"{month}월 {day}일", f"{MONTHS.split()[month - 1]} {day}")}


# -- the generator ------------------------------------------------------------------------------
@dataclass
class _Planned:
    """One conversation with every random draw made, before it is written in a language."""

    turns: list[tuple[str, Pair, dict[str, Pair], int]]  # role, template, slots, typo draw
    starts: list[datetime]  # per turn
    questions: list[tuple[Pair, dict[str, Pair], int, str, str]]  # template, slots, ev, fact, kind


def _plan(rng: random.Random, index: int, sessions: int, exchanges: int, facts: int) -> _Planned:
    chosen = rng.sample(FACTS, facts)
    slots = {f.key: {**rng.choice(f.values), **(_date(rng) if f.dated else {})} for f in chosen}
    early = sessions * exchanges // 3  # facts are told in the first third
    at_exchange = dict(zip(rng.sample(range(early), facts), chosen, strict=True))
    distractors = [d for f in FACTS for d in f.distractors]
    first = datetime(2024, 3, 2, 20, 0, tzinfo=UTC) + timedelta(days=3 * index)
    turns: list[tuple[str, Pair, dict[str, Pair], int]] = []
    starts: list[datetime] = []
    evidence: dict[str, int] = {}
    for s in range(sessions):
        start = first + timedelta(days=6 * s + rng.randint(0, 3), minutes=rng.randint(0, 120))
        for e in range(exchanges):
            n = s * exchanges + e
            fact = at_exchange.get(n)
            if fact is not None:
                evidence[fact.key] = len(turns)
                user = (rng.choice(fact.statements), slots[fact.key])
                reply = rng.choice(ACKS)
            else:
                pool = distractors if rng.random() < 0.35 else CHAT
                user, reply = (rng.choice(pool), {}), rng.choice(REPLIES)
            for role, (template, sl) in ((USER, user), (ASSISTANT, (reply, {}))):
                turns.append((role, template, sl, rng.randrange(1 << 30)))
                starts.append(start + timedelta(seconds=40 * (len(starts) % (2 * exchanges))))
    questions = [
        (q, slots[f.key], evidence[f.key], f.key, kind)
        for f in chosen
        for kind, qs in (("template", f.questions), ("paraphrase", f.paraphrases))
        for q in qs
    ]
    return _Planned(turns, starts, questions)


def _write(template: Pair, slots: dict[str, Pair], lang: str, switched: bool = False) -> str:
    """`switched`: Korean text with the English slot values (names, places, foods, ...; dates
    stay Korean), the way 아빠 writes a Latin-script name into a Korean sentence."""
    i = LANGS.index(lang)
    j = LANGS.index("en") if switched else i
    return _render(template[i], {k: v[i if k == "date" else j] for k, v in slots.items()})


def _typo(text: str, draw: int, lang: str) -> str:
    """About one message in seven gets one slip, where one of the language's slips applies."""
    if draw % 7:
        return text
    fits = [(a, b) for a, b in TYPOS[lang] if a in text]
    if not fits:
        return text
    right, wrong = fits[(draw // 7) % len(fits)]
    return text.replace(right, wrong, 1)


def generate(
    lang: str = "ko",
    conversations: int = 12,
    seed: int = 11,
    sessions: int = 6,
    exchanges: int = 20,
    facts: int = 8,
    code_switched: bool = False,
) -> list[Conversation]:
    """`conversations` conversations of `sessions` x `exchanges` x 2 messages, each with `facts`
    planted facts and their questions. The same arguments give the same conversations, in
    Korean ("ko") or in the English twin ("en"): one plan, written in either language.
    `code_switched` (Korean only): the slot values (Choco, Osaka, peanuts, puppy, ...) are the
    English ones, in Latin script, in the Korean statements and questions."""
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {LANGS}")
    if code_switched and lang != "ko":
        raise ValueError("code_switched is for Korean text")
    out = []
    for c in range(conversations):
        plan = _plan(random.Random(seed * 1000 + c), c, sessions, exchanges, facts)
        messages = [
            Message(role, _typo(_write(t, sl, lang, code_switched), draw, lang), at)
            for (role, t, sl, draw), at in zip(plan.turns, plan.starts, strict=True)
        ]
        questions = [
            Question(_write(t, sl, lang, code_switched), (ev,), fact, kind)
            for t, sl, ev, fact, kind in plan.questions
        ]
        name = f"{lang}{'-cs' if code_switched else ''}-{c:02d}"
        out.append(Conversation(name, lang, messages, questions))
    return out


# -- BM25-only scoring --------------------------------------------------------------------------
def _whole_run(run: str) -> list[str]:
    return [run] if len(run) > 1 else []  # the tokenizer before issue 11: a run is one word


def _bigrams_and_short_stem(run: str) -> list[str]:
    stem = hangul_stem(run)
    return bigrams(run) + ([stem] if len(stem) == 1 and len(run) > 1 else [])


def _stem_bigrams(run: str) -> list[str]:
    return bigrams(hangul_stem(run))


# memory.bm25's analyzer before Korean question words were stop words (issue 11, stop 23)
_no_stopwords: Analyzer = partial(hangul_terms, stop=frozenset())


ANALYZERS: dict[str, Analyzer] = {
    "whole run (before)": _whole_run,
    "bigrams (Lucene CJK)": bigrams,
    "particles stripped": lambda run: [hangul_stem(run)],
    "bigrams + 1-syllable stem": _bigrams_and_short_stem,
    "bigrams of the stem": _stem_bigrams,
    "bigrams + whole stem, no Korean stop words": _no_stopwords,
    "bigrams + whole stem + Korean stop words (chosen: memory.bm25)": hangul_terms,
}


def recall_at(
    convs: Sequence[Conversation], analyzer: Analyzer, ks: Sequence[int] = (5, 10)
) -> dict[tuple[str, int], float]:
    """Mean evidence recall of BM25's top k per question kind ("template", "paraphrase")."""
    sums: dict[tuple[str, int], float] = {}
    counts: dict[str, int] = {}
    tokenizer: Callable[[str], list[str]] = partial(tokenize, hangul=analyzer)
    for conv in convs:
        bm25 = BM25(tokenize=tokenizer)
        for i, m in enumerate(conv.messages):
            bm25.add(i, m.text)
        for q in conv.questions:
            top = bm25.top(q.text, max(ks))
            counts[q.kind] = counts.get(q.kind, 0) + 1
            for k in ks:
                hit = sum(e in top[:k] for e in q.evidence) / len(q.evidence)
                sums[(q.kind, k)] = sums.get((q.kind, k), 0.0) + hit
    return {key: v / counts[key[0]] for key, v in sums.items()}


# -- through the HybridRecaller (real MiniLM), optional --------------------------------------------
@contextmanager
def _recaller_tokenizer(analyzer: Analyzer) -> Iterator[None]:
    """The recaller builds `BM25()` itself: swap the default tokenizer for the measurement."""
    init = memory.bm25.BM25.__init__
    saved = init.__defaults__
    init.__defaults__ = (*(saved or (0.9, 0.4))[:2], partial(tokenize, hangul=analyzer))
    try:
        yield
    finally:
        init.__defaults__ = saved


async def hybrid_recall_at(
    convs: Sequence[Conversation],
    configs: dict[str, tuple[Analyzer, dict[str, Any]]],
    embedder_name: str = "e5",
) -> dict[str, dict[tuple[str, int], float]]:
    """Evidence recall at top 5/10 of HybridRecaller.recall (neighbours included) per config:
    name -> (Hangul analyzer, RecallParams overrides), with the embedder of that name
    (benchmarks/embedder_candidates.py)."""
    from app.llm.worker import MLXWorker
    from benchmarks.embedder_candidates import candidate
    from memory.recall import HybridRecaller, RecallParams
    from memory.types import SessionInfo, StoredMessage
    from memory.vector_index import VectorIndex

    worker = MLXWorker(name="mlx-korean-facts")
    out: dict[str, dict[tuple[str, int], float]] = {}
    try:
        embedder = candidate(embedder_name, worker)
        embedder.load()
        with tempfile.TemporaryDirectory(prefix="memento-korean-") as tmp:
            index = VectorIndex.open(Path(tmp), None, embedder)
            for name, (analyzer, params) in configs.items():
                sums: dict[tuple[str, int], float] = {}
                counts: dict[str, int] = {}
                with _recaller_tokenizer(analyzer):
                    recaller = HybridRecaller(index, RecallParams(**params))
                    for conv in convs:
                        session = SessionInfo(id=conv.name, user_id="bench", persona_id="pippa")
                        msgs = [
                            StoredMessage(
                                id=i + 1, role=m.role, content=m.text, tokens=1, created_at=m.at
                            )  # type: ignore[arg-type]
                            for i, m in enumerate(conv.messages)
                        ]
                        await recaller.observe(session, msgs)
                        for q in conv.questions:
                            # asked as a recalling strategy asks: without the two names
                            query = without_names(q.text, NAMES[conv.lang])
                            top = await recaller.recall(session, query, msgs, set(), 10)
                            counts[q.kind] = counts.get(q.kind, 0) + 1
                            for k in (5, 10):
                                hit = sum(e + 1 in top[:k] for e in q.evidence) / len(q.evidence)
                                sums[(q.kind, k)] = sums.get((q.kind, k), 0.0) + hit
                out[name] = {key: v / counts[key[0]] for key, v in sums.items()}
    finally:
        worker.shutdown()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--conversations", type=int, default=12)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--show", type=int, default=0, help="print N messages of the first ones")
    ap.add_argument("--hybrid", action="store_true", help="also rank with HybridRecaller")
    ap.add_argument(
        "--embedder",
        default="e5",
        choices=("minilm", "e5", "use"),
        help="the HybridRecaller's embedder (benchmarks/embedder_candidates.py)",
    )
    ap.add_argument(
        "--defaults-only", action="store_true", help="with --hybrid: only the default recaller"
    )
    args = ap.parse_args()
    data = {lang: generate(lang, args.conversations, args.seed) for lang in LANGS}
    for lang in LANGS if args.show else ():
        for m in data[lang][0].messages[: args.show]:
            print(f"{lang} {m.at:%m-%d %H:%M} {m.role:9} {m.text}")
        for q in data[lang][0].questions[:4]:
            print(f"{lang} Q [{q.kind}] {q.text} -> {q.evidence}")
    first = data["ko"]
    n_msgs = sum(len(c.messages) for c in first)
    n_tq = sum(q.kind == "template" for c in first for q in c.questions)
    n_pq = sum(q.kind == "paraphrase" for c in first for q in c.questions)
    print(
        f"{len(first)} conversations per language, {n_msgs} messages, {n_tq} template and "
        f"{n_pq} paraphrase questions (seed {args.seed})\n"
    )
    cols = [
        (lang, kind, k) for lang in LANGS for kind in ("template", "paraphrase") for k in (5, 10)
    ]
    print("| Hangul analyzer | " + " | ".join(f"{lg} {kd[:5]}. @{k}" for lg, kd, k in cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for name, analyzer in ANALYZERS.items():
        scores = {lang: recall_at(data[lang], analyzer) for lang in LANGS}
        row = [f"{scores[lang][(kind, k)]:.3f}" for lang, kind, k in cols]
        print(f"| {name} | " + " | ".join(row) + " |")
    if args.hybrid:
        before, chosen = ANALYZERS["whole run (before)"], hangul_terms
        configs = {
            f"dense only ({args.embedder})": (chosen, {"lexical_k": 0, "cjk_dense_weight": 1.0}),
            "whole-run BM25, cjk_dense_weight 1 (before)": (before, {"cjk_dense_weight": 1.0}),
            "bigrams + whole stem, cjk_dense_weight 1": (chosen, {"cjk_dense_weight": 1.0}),
            "bigrams + whole stem, cjk_dense_weight 0.5": (chosen, {"cjk_dense_weight": 0.5}),
            "bigrams + whole stem, cjk_dense_weight 0.25": (chosen, {"cjk_dense_weight": 0.25}),
            "bigrams + whole stem, cjk_dense_weight 0": (chosen, {"cjk_dense_weight": 0.0}),
            "bigrams + whole stem, no Korean stop words (defaults before)": (
                _no_stopwords,
                {},
            ),
            "bigrams + whole stem (defaults)": (chosen, {}),
        }
        if args.defaults_only:
            configs = {"defaults": (chosen, {})}
        # Code-switched: Korean with the names, places, foods in Latin script ("우리 puppy
        # 이름이 뭐였지?"); only the questions holding a Latin word are asked.
        switched = [
            replace(c, questions=[q for q in c.questions if _LATIN.search(q.text)])
            for c in generate("ko", args.conversations, args.seed, code_switched=True)
        ]
        data["ko+en"] = [c for c in switched if c.questions]
        langs = (*LANGS, "ko+en")
        scores = {
            lang: asyncio.run(hybrid_recall_at(data[lang], configs, args.embedder))
            for lang in langs
        }
        first_row = scores["ko+en"][next(iter(configs))]
        cols = [
            (lang, kind, k)
            for lang in langs
            for kind in ("template", "paraphrase")
            for k in (5, 10)
            if lang != "ko+en" or (kind, k) in first_row
        ]
        n_cs = sum(len(c.questions) for c in data["ko+en"])
        print(
            "\nHybridRecaller.recall, top k (neighbouring turns included); ko+en: "
            f"{n_cs} code-switched questions:\n"
        )
        print("| recaller | " + " | ".join(f"{lg} {kd[:5]}. @{k}" for lg, kd, k in cols) + " |")
        print("|---" * (len(cols) + 1) + "|")
        for name in configs:
            row = [f"{scores[lang][name][(kind, k)]:.3f}" for lang, kind, k in cols]
            print(f"| {name} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
