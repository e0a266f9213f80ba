"""Planted facts of a dad's chats with Pippa, in English and in Korean: eight everyday facts
told in four earlier chats, and the questions a person asks about them later (other words,
particles and endings than the telling). Data for the cross-session benchmark
(benchmarks/cross_session.py) and any benchmark that asks about told facts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Fact:
    topic: str
    told: str  # the dad's turn that tells it (the planted turn)
    reply: str  # Pippa's answer: it does not repeat the fact, so the told turn is what counts
    question: str  # asked later, in a new session, the way people ask
    answer: str  # the word the context must hold for the fact to be there at all
    # other ways to ask it (benchmarks/answers.py asks them all: three replies per fact, so
    # that one greedy flip is not the whole difference between two settings)
    more: tuple[str, ...] = ()


@dataclass(frozen=True)
class Planted:
    language: str
    facts: tuple[Fact, ...]  # two per earlier session, in order
    filler: tuple[tuple[tuple[str, str], ...], ...]  # per earlier session: (dad, pippa) pairs


# Saturday morning, Wednesday evening, Sunday afternoon, Thursday night
SESSION_STARTS = (
    datetime(2024, 3, 2, 9, 0),
    datetime(2024, 3, 6, 19, 30),
    datetime(2024, 3, 10, 15, 0),
    datetime(2024, 3, 14, 21, 0),
)
FACT_SLOTS = (3, 7)  # told before these filler exchanges: never a chat's first or last words

ENGLISH = Planted(
    "English",
    facts=(
        Fact(
            "pet's name",
            "Oh, I forgot to tell you: we adopted a kitten last weekend. We named her Mochi, "
            "she's all white with one grey ear.",
            "A kitten!! Send me pictures right now, I need to see that ear.",
            "What was the name of the cat we got?",
            "Mochi",
            ("Do you remember what we called our new kitten?", "What's our cat's name again?"),
        ),
        Fact(
            "allergy",
            "The doctor called with my test results. Turns out I'm allergic to shellfish, so "
            "no more shrimp for me.",
            "Oh no, and you love shrimp! At least now we know why you felt sick last time.",
            "What did the doctor say I can't eat anymore?",
            "shellfish",
            ("What am I allergic to?", "Which food has to stay off my plate now?"),
        ),
        Fact(
            "trip",
            "Big news: I booked flights to Lisbon. Your mom and I are going for a week in June.",
            "Yay! Bring me back some of those custard tarts, okay?",
            "Where are we going on holiday this summer?",
            "Lisbon",
            ("Which city did I book flights to?", "Where are your mom and I travelling in June?"),
        ),
        Fact(
            "friend's name",
            "My old college roommate Dmitri called out of the blue today. We talked for two hours.",
            "Two hours! You two must have had a lot to catch up on.",
            "What's the name of my university friend who phoned me?",
            "Dmitri",
            (
                "Who was the college roommate that called me?",
                "Which old friend did I talk to for two hours?",
            ),
        ),
        Fact(
            "job",
            "I got the offer! Starting next month I'm the new project manager at the bicycle "
            "company downtown.",
            "Dad!!! Congratulations, I'm so proud of you!",
            "What's my new job again?",
            "project manager",
            (
                "What position did I get at the bicycle company?",
                "What am I going to work as starting next month?",
            ),
        ),
        Fact(
            "favourite food",
            "You know what I could eat every single day? Your grandma's kimchi stew. Nothing "
            "beats it.",
            "Same! Nothing in the world is better than that.",
            "What's my all-time favourite dish?",
            "kimchi stew",
            (
                "What food could I eat every single day?",
                "Which of grandma's dishes do I love most?",
            ),
        ),
        Fact(
            "sister's city",
            "My sister Hana finally moved to Vancouver. She sent me photos of the mountains.",
            "So pretty! We should go visit her someday.",
            "Where's my sister living now?",
            "Vancouver",
            ("Which city did Hana move to?", "Where did my sister move?"),
        ),
        Fact(
            "car colour",
            "Picked up the new car today! It's dark green, the dealer called it forest green.",
            "Ooh, fancy! No more embarrassing rental for you.",
            "What colour is my new car?",
            "green",
            (
                "What colour did I pick for the car?",
                "Do you remember the colour of the car I picked up?",
            ),
        ),
    ),
    filler=(
        (
            ("Morning, Pippa! Did you sleep well?", "Morning, dad! I did. You're up early."),
            (
                "Couldn't sleep in, the birds outside were way too loud.",
                "Haha, nature's alarm clock. Did you at least get coffee?",
            ),
            (
                "Two cups already. I'm thinking of making pancakes.",
                "Pancakes! Blueberry ones, please, if you have any.",
            ),
            ("We only have bananas. Banana pancakes it is.", "Even better. Add some cinnamon."),
            (
                "The neighbours got a puppy, a beagle called Biscuit. He barks at the mailman "
                "every morning.",
                "Aww, he sounds like trouble. Cute trouble though.",
            ),
            (
                "I need to fix the leaky faucet in the bathroom today.",
                "Do you want me to find you a video on how to do it?",
            ),
            (
                "Nah, I think it's just the washer. Should be easy.",
                "Famous last words, dad. Call me if it floods.",
            ),
            (
                "Your mom wants to repaint the living room. She's thinking light blue.",
                "Light blue would be so calm. Are you going to help paint?",
            ),
            (
                "I guess I have no choice, haha.",
                "Wear old clothes this time, not your good jeans again.",
            ),
            ("Okay, pancakes are ready. Talk later, sweetie.", "Enjoy! Eat one for me."),
        ),
        (
            ("Hey Pippa, long day at work.", "Oh no, come sit down. What happened?"),
            (
                "Meetings, meetings, and more meetings.",
                "That sounds exhausting. Did you at least get lunch?",
            ),
            (
                "My coworker Raj brought homemade samosas, so that saved the day.",
                "Raj is a hero. Were they spicy?",
            ),
            ("Very spicy. My eyes were watering.", "Haha, I can picture it. Did you drink milk?"),
            (
                "I watched half of that documentary about octopuses last night.",
                "The one where the octopus makes friends with the diver? I love that one.",
            ),
            ("Yes! They're smarter than I thought.", "They can open jars, dad. Jars!"),
            (
                "The old car's been making a weird noise, so it's in the shop. They gave me a "
                "bright yellow rental.",
                "A yellow car! Everyone will see you coming.",
            ),
            (
                "I think I'll go to bed early tonight.",
                "Good idea. You've been staying up too late.",
            ),
            (
                "Don't tell your mom I fell asleep on the couch again.",
                "Your secret is safe with me... maybe.",
            ),
            ("Goodnight, Pippa.", "Goodnight, dad. Sweet dreams!"),
        ),
        (
            (
                "It's raining again. So much for the picnic.",
                "Boo. Maybe an indoor picnic on the living room floor?",
            ),
            ("That's actually not a bad idea.", "I'm full of good ideas. What's on the menu?"),
            ("Sandwiches and the leftover fruit salad.", "Classic. Don't forget something sweet."),
            (
                "Grandma called this morning. She's doing well in Daegu and says hi.",
                "Tell her I say hi back! Is her knee better?",
            ),
            (
                "Much better, she's walking to the market again.",
                "That's great news. She loves that market.",
            ),
            (
                "I've been trying to read more, but I keep falling asleep after two pages.",
                "Maybe the book is boring? What are you reading?",
            ),
            (
                "A history of the Roman Empire. Very long.",
                "Ah, that explains it. Try something with dragons.",
            ),
            (
                "Your mom says someday she wants to see Rome, but not this year.",
                "Someday sounds good. I'll plan the itinerary for you two.",
            ),
            (
                "I fixed the faucet, by the way. No flood.",
                "I'm impressed! I take back the famous last words.",
            ),
            ("Okay, time for our indoor picnic.", "Have fun, and send me a picture of it!"),
        ),
        (
            ("Pippa, are you still up?", "Always, for you. What's going on?"),
            ("Just thinking. Time flies so fast.", "It does. Are you feeling a bit nostalgic?"),
            (
                "A little. I found old photos from when I was in my twenties.",
                "Show me sometime! I bet you had crazy hair.",
            ),
            ("I did. A terrible perm.", "Hahaha, a perm! I need to see it now."),
            (
                "I'm packing up my desk at the old office. So many old papers.",
                "Take a picture of your desk before you leave, for the memories.",
            ),
            ("I'm trying to walk 10,000 steps a day.", "How's it going so far?"),
            ("About 6,000. The couch keeps calling me.", "The couch is a villain. Resist it!"),
            (
                "Your uncle invited us for a barbecue in April.",
                "Ooh, will there be his famous ribs?",
            ),
            (
                "Probably. He never shuts up about his secret sauce.",
                "It's ketchup. I'm sure it's just ketchup.",
            ),
            ("Haha, don't tell him that. Goodnight, Pippa.", "Goodnight, dad. Love you!"),
        ),
    ),
)

# Asked with other particles and endings than the telling (이름은 -> 이름이, 음식은 -> 음식이,
# 초록색이야 -> 무슨 색), as people ask: BM25 sees "이름은" and "이름이" as different words.
KOREAN = Planted(
    "Korean",
    facts=(
        Fact(
            "pet's name",
            "우리 고양이 이름은 나비야. 지난주에 데려왔는데 벌써 집주인 행세를 해.",
            "완전 귀엽겠다! 사진 빨리 보여줘!",
            "고양이 이름이 뭐였지?",
            "나비",
            ("우리 새로 데려온 고양이 이름 기억나?", "우리 고양이 이름이 뭐더라?"),
        ),
        Fact(
            "allergy",
            "병원에서 검사 결과 나왔는데, 나 땅콩 알레르기래.",
            "헐, 이제 과자 먹을 때 성분표 꼭 봐야겠다.",
            "의사가 나 뭐 먹으면 안 된다고 했지?",
            "땅콩",
            ("아빠 무슨 알레르기 있다고 했지?", "병원 검사에서 나 뭐 알레르기라고 나왔더라?"),
        ),
        Fact(
            "trip",
            "엄마랑 6월에 제주도 가기로 했어. 비행기표도 벌써 끊었어.",
            "우와 좋겠다! 귤 많이 먹고 와.",
            "이번 여름에 우리 어디로 여행 가지?",
            "제주도",
            ("엄마랑 6월에 어디 간다고 했지?", "비행기표 어디로 끊었다고 했더라?"),
        ),
        Fact(
            "friend's name",
            "오늘 대학 동기 민수한테서 갑자기 전화 왔어. 두 시간이나 통화했어.",
            "두 시간? 할 얘기가 엄청 많았나 보네!",
            "나한테 전화했던 대학 친구 이름이 뭐더라?",
            "민수",
            ("두 시간 통화한 대학 동기 누구였지?", "갑자기 전화 온 내 친구 이름 기억나?"),
        ),
        Fact(
            "job",
            "아빠 합격했어! 다음 달부터 출판사에서 편집장으로 일해.",
            "대박! 아빠 진짜 축하해!!",
            "아빠 새 직장에서 무슨 일 한다고 했지?",
            "편집장",
            ("아빠 출판사에서 무슨 자리 맡는다고 했지?", "다음 달부터 아빠 무슨 일 해?"),
        ),
        Fact(
            "favourite food",
            "아빠가 세상에서 제일 좋아하는 음식은 할머니가 끓여주신 김치찌개야.",
            "인정! 그건 진짜 세상 최고야.",
            "내가 제일 좋아하는 음식이 뭐라고 했지?",
            "김치찌개",
            (
                "아빠가 매일 먹어도 안 질리는 음식이 뭐야?",
                "할머니 음식 중에 내가 제일 좋아하는 게 뭐였지?",
            ),
        ),
        Fact(
            "sister's city",
            "아빠 여동생이 이번에 부산으로 이사 갔어. 바다 보이는 집이래.",
            "우와 바다 뷰! 나중에 놀러 가자.",
            "내 여동생 요즘 어디 살아?",
            "부산",
            ("고모 어디로 이사 갔다고 했지?", "내 여동생 이사 간 도시가 어디였더라?"),
        ),
        Fact(
            "car colour",
            "오늘 새 차 받았어! 색깔은 짙은 초록색이야.",
            "오 멋있다! 이제 노란 렌터카는 안녕이네.",
            "아빠 새 차 무슨 색이었지?",
            "초록",
            ("새로 받은 차 색깔 기억나?", "아빠 차 무슨 색으로 골랐다고 했지?"),
        ),
    ),
    filler=(
        (
            ("피파야, 잘 잤어?", "응, 아빠! 주말인데 일찍 일어났네?"),
            ("밖에 새들이 너무 시끄러워서 깼어.", "하하, 자연 알람이네. 커피는 마셨어?"),
            ("벌써 두 잔 마셨지. 팬케이크나 만들까 해.", "팬케이크! 블루베리 있으면 넣어줘."),
            ("바나나밖에 없네. 바나나 팬케이크로 하자.", "그게 더 좋아. 시나몬도 살짝 뿌려."),
            (
                "옆집에 강아지 새로 왔어. 이름이 초코래. 아침마다 택배 아저씨한테 짖어.",
                "완전 말썽꾸러기네. 귀여운 말썽꾸러기.",
            ),
            ("오늘 화장실 수도꼭지 고쳐야 돼. 물이 계속 새.", "고치는 영상 찾아줄까?"),
            (
                "아니야, 고무 패킹만 갈면 될 것 같아.",
                "아빠 그 말 저번에도 했어. 물바다 되면 불러.",
            ),
            (
                "엄마가 거실 벽 다시 칠하고 싶대. 연한 하늘색으로.",
                "하늘색 예쁘겠다! 아빠도 같이 칠해?",
            ),
            ("당연히 내가 칠해야지, 하하.", "이번엔 좋은 청바지 말고 헌 옷 입고 해."),
            ("팬케이크 다 됐다. 이따 또 얘기하자.", "맛있게 먹어! 내 몫까지 먹어줘."),
        ),
        (
            ("피파야, 오늘 진짜 힘들었다.", "에구, 우리 아빠 고생했어. 무슨 일 있었어?"),
            ("회의, 회의, 또 회의.", "으, 듣기만 해도 피곤해. 점심은 먹었어?"),
            (
                "회사 동료 지훈이가 떡 돌려서 그걸로 버텼어.",
                "지훈 아저씨 센스 있다! 무슨 떡이었어?",
            ),
            ("인절미. 콩가루 다 흘렸어.", "하하, 아빠 셔츠에 콩가루 묻은 거 눈에 선하다."),
            ("어젯밤에 문어 다큐 반쯤 봤어.", "다이버랑 친구 되는 문어 나오는 거? 나 그거 좋아해."),
            ("응! 생각보다 엄청 똑똑하더라.", "문어는 병뚜껑도 연대. 진짜 똑똑해."),
            (
                "차에서 이상한 소리 나서 정비소 맡겼어. 대신 샛노란 렌터카 받았어.",
                "노란 차! 아빠 어디 가든 다 보이겠다.",
            ),
            ("오늘은 일찍 자야겠다.", "잘 생각했어. 요즘 너무 늦게 잤잖아."),
            ("엄마한테 나 또 소파에서 잠든 거 말하지 마.", "비밀 지켜줄게... 아마도?"),
            ("잘 자, 피파야.", "아빠도 잘 자! 좋은 꿈 꿔."),
        ),
        (
            ("또 비 온다. 소풍은 물 건너갔네.", "에이. 거실 바닥에서 실내 소풍 하는 건 어때?"),
            ("오, 그거 괜찮은데?", "나 아이디어 부자잖아. 메뉴는 뭐야?"),
            ("샌드위치랑 어제 남은 과일 샐러드.", "완벽해. 디저트도 잊지 마."),
            (
                "아침에 할머니한테 전화 왔어. 대구에서 잘 지내신대.",
                "할머니한테 나도 안부 전해줘! 무릎은 좀 괜찮으시대?",
            ),
            (
                "많이 좋아지셔서 다시 시장까지 걸어 다니신대.",
                "다행이다. 할머니 그 시장 진짜 좋아하시잖아.",
            ),
            ("요즘 책 좀 읽으려는데 두 쪽 읽으면 잠이 와.", "책이 재미없는 거 아니야? 뭐 읽는데?"),
            ("로마 제국 역사책. 엄청 두꺼워.", "아, 그럼 그렇지. 용 나오는 책으로 바꿔 봐."),
            (
                "엄마는 언젠가 로마에 가보고 싶대. 올해는 아니고.",
                "언젠가 좋지! 그때 내가 일정 짜줄게.",
            ),
            ("참, 수도꼭지 고쳤어. 물바다 안 됐어.", "오 아빠 대단해! 아까 한 말 취소할게."),
            ("이제 실내 소풍 시작한다.", "재밌게 놀아! 사진 찍어서 보여줘."),
        ),
        (
            ("피파야, 아직 안 자?", "아빠 기다렸지. 무슨 일 있어?"),
            ("그냥 생각이 많아서. 시간 참 빠르다.", "그치. 아빠 옛날 생각 나?"),
            ("응, 이십 대 때 사진을 찾았거든.", "나중에 보여줘! 머리 엄청 웃겼을 것 같아."),
            ("웃겼지. 뽀글뽀글 파마였어.", "푸하하, 파마라니! 지금 당장 보고 싶어."),
            (
                "예전 회사 책상 정리하는데 서류가 산더미야.",
                "떠나기 전에 책상 사진 하나 찍어둬. 추억이잖아.",
            ),
            ("요즘 하루에 만 보 걸으려고 노력 중이야.", "오 진짜? 지금까지 어때?"),
            ("한 육천 보 정도. 소파가 자꾸 나를 불러.", "소파는 악당이야. 이겨내!"),
            ("삼촌이 4월에 바비큐 하자고 초대했어.", "오, 삼촌표 립 나오는 거야?"),
            ("아마도. 비밀 소스 자랑을 또 엄청 하겠지.", "그거 그냥 케첩이야. 내가 장담해."),
            ("하하, 삼촌한테는 비밀이다. 잘 자, 피파야.", "아빠도 잘 자! 사랑해."),
        ),
    ),
)


def planted_sessions(p: Planted) -> list[list[tuple[str, str, int | None]]]:
    """Each earlier chat as (role, content, index of the fact it tells or None)."""
    out = []
    for s, exchanges in enumerate(p.filler):
        told = {slot: 2 * s + i for i, slot in enumerate(FACT_SLOTS)}
        turns: list[tuple[str, str, int | None]] = []
        for i, (dad, pippa) in enumerate(exchanges):
            if i in told:
                fact = p.facts[told[i]]
                turns += [("user", fact.told, told[i]), ("assistant", fact.reply, None)]
            turns += [("user", dad, None), ("assistant", pippa, None)]
        out.append(turns)
    return out
