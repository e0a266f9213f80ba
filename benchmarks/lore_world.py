"""A small world for the lore firing benchmark (benchmarks/lore.py): entries about Ashvale in
English and Korean, and messages labelled with the entries that should fire in each, with
near-miss words that must not (a short key inside a longer word, a Korean noun inside another
noun, a name inside another name)."""

from __future__ import annotations

# entry id -> keys
ENTRIES: dict[str, list[str]] = {
    "ember": ["Ember", "red dragon"],
    "oracle": ["AI"],
    "ashvale": ["Ashvale"],
    "mine": ["silver mine"],
    "kettle": ["Copper Kettle"],
    "witch": ["witch"],
    "ore": ["ore"],
    "art": ["Art"],
    "sam": ["Sam"],
    "용": ["용"],
    "엠버": ["엠버"],
    "광산": ["광산"],
    "마녀": ["마녀"],
    "왕": ["왕"],
    "고양이": ["고양이"],
    "바다": ["바다"],
    "ドラゴン": ["ドラゴン"],
    "龙": ["龙"],
}

# (message, entries that should fire)
MESSAGES: list[tuple[str, set[str]]] = [
    # English: keys in plain sight, with punctuation, possessives, plurals
    ("Have you ever seen Ember fly over the hills?", {"ember"}),
    ("The red dragon sleeps under the mountain.", {"ember"}),
    ("Ember's scales shine like coals.", {"ember"}),
    ("I asked the AI about the weather.", {"oracle"}),
    ("Is the AI's answer ever wrong?", {"oracle"}),
    ("Welcome to Ashvale, traveller!", {"ashvale"}),
    ("We walked to the silver mine at dawn.", {"mine"}),
    ("Let's get a drink at the Copper Kettle.", {"kettle"}),
    ("The witches gathered at midnight.", {"witch"}),
    ("A witch lives by the lake.", {"witch"}),
    ("They dug up iron ore all week.", {"ore"}),
    ("Art said he would meet us at the gate.", {"art"}),
    ("Ask Sam, he knows the roads.", {"sam"}),
    ("Ember circled Ashvale twice before landing.", {"ember", "ashvale"}),
    ("Art and Sam went to the silver mine.", {"art", "sam", "mine"}),
    ("Two red dragons fought over Ashvale.", {"ember", "ashvale"}),
    # English near misses: a key inside another word
    ("I ain't going anywhere tonight.", set()),
    ("The maid said the rain would stop.", set()),
    ("We need more wood before winter.", set()),
    ("The core of the problem is trust.", set()),
    ("Let's start the party early.", set()),
    ("That artist painted the harbor.", set()),
    ("It's the same road as yesterday.", set()),
    ("Samantha sells bread in the square.", set()),
    ("In December the snow came early.", set()),
    ("Snapdragons grow by the wall.", set()),
    ("A copper coin and a kettle of tea.", set()),
    ("The mine was closed; the silver was gone.", set()),
    ("Switch the lamp off, please.", set()),
    ("Explore the shore before noon.", set()),
    # Korean: nouns with particles and endings
    ("어젯밤에 용이 마을 위를 날아갔어.", {"용"}),
    ("용을 본 적 있어?", {"용"}),
    ("그건 용한테 직접 물어봐.", {"용"}),
    ("용은 동굴에서 잠들어 있대.", {"용"}),
    ("저건 진짜 용이야!", {"용"}),
    ("엠버가 하늘을 날고 있어.", {"엠버"}),
    ("엠버에게 선물을 줬어.", {"엠버"}),
    ("광산에서 은이 나와.", {"광산"}),
    ("광산으로 가는 길이 어디야?", {"광산"}),
    ("마녀가 숲에 살아.", {"마녀"}),
    ("마녀들이 모였어.", {"마녀"}),
    ("왕이 성에서 나왔어.", {"왕"}),
    ("왕에게 편지를 보냈어.", {"왕"}),
    ("고양이가 창가에서 자고 있어.", {"고양이"}),
    ("고양이한테 밥 줬어?", {"고양이"}),
    ("바다에서 수영하자.", {"바다"}),
    ("바다로 떠날 거야.", {"바다"}),
    ("용이랑 엠버는 같은 거야?", {"용", "엠버"}),
    ("Netflix에서 엠버 나오는 거 봤어.", {"엠버"}),
    # Korean near misses: the key inside another word
    ("용기를 내서 말해 봐.", set()),
    ("이 컴퓨터를 사용했어.", set()),
    ("제발 나를 용서해 줘.", set()),
    ("공룡 박물관에 갔어.", set()),
    ("용돈을 다 써버렸어.", set()),
    ("그 용사는 용감했다.", set()),
    ("왕복 표를 샀어.", set()),
    ("걔는 왕따를 당했대.", set()),
    ("바다표범을 봤어.", set()),
    ("셉템버엠버는 없는 노래야.", set()),
    # the ambiguity no dictionary-free rule resolves (memory/lore/korean.py): 용도 is "the
    # dragon too" and also "use"; kept in, counted against us
    ("용도 날 수 있어?", {"용"}),
    ("이 칼의 용도가 뭐야?", set()),
    # Japanese and Chinese: no spaces between words
    ("昨日ドラゴンが村に来た。", {"ドラゴン"}),
    ("ドラゴンの巣はどこ？", {"ドラゴン"}),
    ("我看见了一条龙在天上飞。", {"龙"}),
    ("龙的宝藏在山里。", {"龙"}),
]
