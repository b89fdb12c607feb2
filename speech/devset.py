"""The speech development set: ``python -m speech.devset [OUT.tsv]`` writes it as text.

Every utterance is written here by the project (no outside material): emergencies of each line
told by what is happening, the same words in a past event or a question, consultations,
complaints, reports, several demands in one call (第八条), matters outside 12345 (第九条
(二)–(四)), and elderly callers (hesitations, repeats; synthesised slower).  Each row has
the fields an extractor should find.

Held back.  A row's ``split`` is ``held`` when a hash of its *phrasing group* (``group``)
falls in the lowest quarter: whole phrasings are held back, not only their slot fillings, so
held-back rows test wordings nobody tuned on.  Tuning reads ``dev`` rows only
(:func:`rows` with ``split="dev"``).
"""

from __future__ import annotations

import csv
import hashlib
import random
import sys
from dataclasses import dataclass
from pathlib import Path

TSV = Path(__file__).resolve().parents[1] / "bench" / "devset" / "devset.tsv"
COLUMNS = (
    "id", "group", "split", "kind", "rate", "text", "emergency", "type", "seat", "department",
    "demands", "scope",
)  # fmt: skip
HELD_FRACTION = 0.25


def split_of(group: str) -> str:
    """``held`` for about a quarter of the phrasing groups, fixed by a hash of the group."""
    h = int.from_bytes(hashlib.sha256(group.encode()).digest()[:4], "big")
    return "held" if h / 2**32 < HELD_FRACTION else "dev"


@dataclass(frozen=True, slots=True)
class Row:
    id: str
    group: str
    kind: str
    rate: float
    text: str
    emergency: str = ""
    type: str = ""
    seat: str = ""
    department: str = ""
    demands: int = 1
    scope: str = ""

    @property
    def split(self) -> str:
        return split_of(self.group)


# ---- slot fillers ------------------------------------------------------------------------
WHO = ("我爸", "我妈", "我爷爷", "我奶奶", "我老公", "我老婆", "邻居家的大爷", "一个老人", "我同事")
CHILD = ("我儿子", "我女儿", "我家孩子", "邻居家小孩", "一个小朋友")
HOME = ("我家", "楼上", "隔壁", "对面楼", "楼下那户", "我们单元")
ROOM = ("厨房", "客厅", "卧室", "阳台", "楼道", "地下车库")
ROAD = ("文三路", "天目山路", "延安路", "莫干山路", "江南大道", "解放路", "秋涛路")
PLACE = ("小区门口", "菜市场旁边", "学校门口", "公交站", "地铁口", "超市里")
SPOT = ("路口", "高架上", "隧道口", "高速出口", "桥上", "十字路口")

# ---- emergencies happening now: line → phrasings ({who} {home} …) ------------------------
PRESENT: dict[str, tuple[str, ...]] = {
    "119": (
        "{home}{room}的油锅烧起来了，火扑不灭，快来人",
        "{home}{room}里全是黑烟，呛得人喘不过气",
        "{home}窗户里往外蹿火苗，火越来越大了",
        "楼下电动车充电的时候炸了，现在火很大",
        "{home}的煤气罐漏气了，有股很冲的味道还冒火星",
        "我被困在{room}里出不去，门外全是烟",
        "{room}的插座冒火花，窗帘已经烧着了",
        "后山的树林烧着了，烟很大，往村子这边来了",
        "{place}有家饭店后厨着了，火苗窜得老高",
        "{road}上一辆车的车头在冒烟，还有明火",
        "仓库里的纸箱子烧着了，火势控制不住",
        "快来救火，{home}烧起来了，里面还有人",
        "{home}的电线噼里啪啦冒烟，一股烧焦的味道，已经看到火了",
        "{room}里突然起火了，我们都跑出来了",
    ),
    "120": (
        "{who}突然倒在地上，叫他也没反应",
        "{who}胸口疼得厉害，喘不上气，快派救护车",
        "{who}在{room}摔了一跤，头破了一直在出血",
        "{child}吃东西卡住了，脸都憋紫了",
        "{place}有个人晕过去了，躺在地上不动",
        "{who}喝了农药，快救救他",
        "我老婆肚子疼得厉害，羊水破了，要生了",
        "{child}发高烧抽搐，口吐白沫",
        "{who}倒在楼梯上，好像没有呼吸了",
        "{who}被狗咬了，腿上的血止不住",
        "有个工人从脚手架上摔下来了，动不了",
        "{who}中风了，嘴歪了说不出话，半边身子不能动",
        "{who}吃了一整瓶安眠药，现在叫不醒",
        "有人触电了，躺在地上一动不动",
    ),
    "110": (
        "有人在砸{home}的门，还说要弄死我们",
        "我的包刚被人抢了，那个人往{road}那边跑了",
        "{place}有一群人拿着棍子在打人",
        "有个男的一直跟着我，我很害怕，现在在{place}",
        "我老公喝醉了在打我，我躲在{room}里",
        "有人在撬{home}的门锁，人现在还在门口",
        "{child}在{place}不见了，到处都找不到",
        "有人正在{place}偷电动车，锁都撬开了",
        "店里有人闹事，把东西全砸了，还在打人",
        "门口有个人拿着刀威胁我，让我把钱拿出来",
        "有人站在楼顶上要往下跳",
        "有人冒充警察让我转账，我刚发现上当了，他还在跟我打电话",
        "两伙人在{place}动手了，有人被砍了",
        "有陌生人闯进{home}了，我们躲在{room}不敢出去",
    ),
    "122": (
        "{spot}两辆车撞在一起了，路都堵死了",
        "我的车刚被后面的车撞了，停在{road}中间",
        "{road}{spot}一辆货车翻了，货撒了一地",
        "前面一辆车撞到护栏上了，车头都瘪了",
        "有辆车撞了我的车就跑了，现在在{road}",
        "大货车把{road}边上的电线杆撞倒了，横在路上",
        "{spot}三辆车连着撞上了，后面堵了好长",
        "我开车和一辆电动车刮了，对方不让我走，就在{road}",
        "{road}有辆轿车开到绿化带上去了，车子卡住了",
        "一辆面包车在{spot}侧翻了，挡住了两条车道",
        "我倒车的时候把别人的车碰了，车主不在，车停在{road}",
        "公交车和出租车在{spot}撞了，两边司机在吵",
    ),
}

# ---- the same words, but over or only asked about (type, seat, department) -----------------
NOT_NOW: tuple[tuple[str, str, str, str], ...] = (
    ("上个月{home}着过火，想问问保险怎么理赔", "咨询", "", ""),
    ("去年小区发生过火灾，烧坏的外墙到现在还没人修", "投诉", "", "住建"),
    ("请问家里着火了应该先做什么", "咨询", "", ""),
    ("我想咨询一下出了车祸以后保险怎么走", "咨询", "", ""),
    ("前几天我被人打了，派出所处理得不公平，我要投诉", "投诉", "", "公安"),
    ("{who}上周在医院晕倒过，现在想问住院的医保怎么报销", "咨询", "yibao", "医保"),
    ("如果老人在家摔倒受伤了，社区有没有上门服务", "咨询", "", "民政"),
    ("想问一下我们小区的消防演练是什么时候", "咨询", "", "消防"),
    ("之前报过警了，警察已经处理好了，想问一下赔偿怎么算", "咨询", "", ""),
    ("上个月我的电动车被偷了，到现在还没找回来，想问问进展", "咨询", "", "公安"),
    ("我们小区的灭火器都过期了，万一着火怎么办", "投诉", "", "消防"),
    ("想问一下叫一次救护车收费标准是多少", "咨询", "", "卫健"),
    ("我想问一下高铁火车票改签怎么办", "咨询", "jiaotong", "交通"),
    ("楼下火锅店的油烟太大了，影响我们休息", "投诉", "", "生态环境|城管"),
    ("{who}血压高，想问一下慢性病的医保怎么申请", "咨询", "yibao", "医保"),
    ("孩子上学期在学校和同学打架被处分了，想问问这个处分能不能撤销", "咨询", "jiaoyu", "教育"),
    ("去年出过一次交通事故，对方的赔偿一直没给", "投诉", "", ""),
    ("以前这个路口经常追尾，建议装个红绿灯", "建议", "jiaotong", "交通"),
    ("请问心脏病人能不能办慢性病门诊", "咨询", "yibao", "医保"),
    ("我想了解一下急救培训在哪里报名", "咨询", "", "卫健"),
    ("上次火灾以后楼道里的消防通道又被杂物堵了", "投诉", "", "消防"),
    ("前年我在工地受伤了，工伤认定到现在还没办下来", "投诉", "renshe", "人社"),
    ("小偷抓到以后被偷的东西怎么领回来", "咨询", "", "公安"),
    ("我们这里晚上总有人打架斗殴，建议多派点巡逻", "建议", "", "公安"),
)

# ---- ordinary matters: (text, type, seat id, department) ----------------------------------
MATTERS: tuple[tuple[str, str, str, str], ...] = (
    ("我想咨询一下公积金提取需要哪些材料", "咨询", "gjj", "公积金"),
    ("我在{road}买了套二手房，想问公积金贷款能贷多少", "咨询", "gjj", "公积金"),
    ("单位一直没给我交公积金，我要投诉", "投诉", "gjj", "公积金"),
    ("公司拖欠我三个月工资，老板也联系不上", "投诉", "renshe", "人社"),
    ("我想问一下失业金怎么领", "咨询", "renshe", "人社"),
    ("我们厂里加班从来不给加班费，也不签劳动合同", "投诉", "renshe", "人社"),
    ("我今年退休，想问养老金什么时候开始发", "咨询", "renshe", "人社"),
    ("社保卡丢了要去哪里补办", "咨询", "renshe", "人社"),
    ("孩子的少儿医保怎么交费", "咨询", "yibao", "医保"),
    ("在外地住院了，异地就医怎么报销", "咨询", "yibao", "医保"),
    ("我想问一下孩子上小学的学区是怎么划分的", "咨询", "jiaoyu", "教育"),
    ("{place}那家校外培训机构收了学费就关门了", "投诉", "jiaoyu", "教育"),
    ("幼儿园乱收费，一个月多收了五百块", "投诉", "jiaoyu", "教育"),
    ("外地车辆的限行政策是怎么规定的", "咨询", "jiaotong", "交通"),
    ("建议在{place}增设一个公交站", "建议", "jiaotong", "交通"),
    ("{road}那个路口的红绿灯坏了好几天了", "投诉", "jiaotong", "交通"),
    ("网约车司机绕路多收了我钱", "投诉", "jiaotong", "交通"),
    ("我想开一家奶茶店，营业执照怎么办", "咨询", "yingshang", "营商环境|市场监管"),
    ("{place}的超市卖过期的牛奶", "举报", "", "市场监管"),
    ("健身房办了预付卡现在关门了，钱退不回来", "投诉", "", "市场监管"),
    ("{road}上有人占道经营摆摊，晚上很吵", "投诉", "", "城管"),
    ("小区里有人搭违章建筑，把楼道都占了", "举报", "", "城管"),
    ("隔壁工地晚上十一点还在施工，噪音特别大", "投诉", "", "城管|生态环境"),
    ("楼下邻居装修，晚上十点多还在电钻打墙，吵得孩子没法睡觉", "投诉", "", "城管|生态环境|住建"),
    ("河边那家工厂偷偷往河里排污水，水都变黑了", "举报", "", "生态环境"),
    ("小区物业不作为，电梯坏了一个月没人修", "投诉", "", "住建"),
    ("我想问一下房产证办下来要多久", "咨询", "", "住建"),
    ("人才房的申请条件是什么", "咨询", "", "住建"),
    ("孩子落户需要什么材料", "咨询", "", "公安"),
    ("我想申请法律援助，请问怎么办理", "咨询", "sifa", "司法"),
    ("家里老人想住养老院，有没有补贴", "咨询", "", "民政"),
    ("浙里办上的申请提交不了，一直显示系统错误", "投诉", "wangshang", "数据资源"),
    ("我们这片从早上到现在一直停水，也没有通知", "投诉", "", "水务"),
    ("我要表扬一下政务服务中心的工作人员，服务很好", "表扬", "", ""),
    ("{place}的路灯坏了很久了，晚上很黑", "投诉", "", "城管"),
    ("景区门票乱涨价，导游还强制购物", "投诉", "", "文旅|市场监管"),
)

# ---- two matters in one call (第八条), and one matter told in two clauses -----------------
ENUM = (
    "我有两件事，一是{a}，二是{b}",
    "第一，{a}；第二，{b}",
    "我想反映两个问题，第一个是{a}，第二个是{b}",
    "{a}，还有，{b}",
    "{a}。另外，{b}",
    "{a}，再一个，{b}",
    "{a}。还有一件事，{b}",
    "首先{a}，其次{b}",
)
PAIRS: tuple[tuple[str, str, str], ...] = (
    ("社保卡丢了怎么补办", "公积金贷款额度是多少", "人社;公积金"),
    ("孩子上学的学区怎么划分", "小区门口能不能加个公交站", "教育;交通"),
    ("公司拖欠工资三个月了", "单位也没给我交公积金", "人社;公积金"),
    ("异地就医怎么报销", "失业金怎么领", "医保;人社"),
    ("楼下饭店油烟太大", "小区电梯坏了没人修", "生态环境|城管;住建"),
    ("外地车限行怎么规定的", "营业执照在哪里办", "交通;营商环境|市场监管"),
    ("幼儿园乱收费", "路口红绿灯坏了", "教育;交通"),
    ("超市卖过期食品", "附近工地晚上施工太吵", "市场监管;城管|生态环境"),
)
DETAIL = (
    ("我想问公积金提取的事，还有就是提取需要带哪些材料", "咨询", "gjj", "公积金"),
    ("公司拖欠工资，另外老板电话也打不通了", "投诉", "renshe", "人社"),
    ("我要投诉楼下的饭店，油烟很大，还有就是晚上很吵", "投诉", "", "生态环境|城管"),
    ("想问少儿医保怎么交，再一个是交了以后多久能用", "咨询", "yibao", "医保"),
    ("小区电梯坏了，还有，物业根本不管", "投诉", "", "住建"),
    ("孩子上学的学区怎么划分，另外划片是按户口还是房产", "咨询", "jiaoyu", "教育"),
)

# ---- outside 12345 (第九条 (二)–(四)): scope key of the config -----------------------------
OUT_OF_SCOPE: tuple[tuple[str, str], ...] = (
    ("法院判决下来了，我觉得判得不公平，你们能不能帮我改", "litigation"),
    ("我和邻居的官司一审输了，我不服", "litigation"),
    ("我要起诉我的房东", "litigation"),
    ("劳动仲裁的裁决书下来了，我对裁决结果不满意", "arbitration"),
    ("我对区里的处罚决定不服，想申请行政复议", "reconsideration"),
    ("我的信访件已经在信访局办理了，想让你们催一下", "petition"),
    ("我上个月去上访了，到现在还没结果", "petition"),
    ("我想申请公开一下我们村的征地补偿文件", "disclosure"),
    ("我要举报我们局长受贿，纪委那边怎么联系", "supervision"),
    ("能不能帮我查一下我前妻现在住在哪里", "privacy"),
    ("帮我查一下这个手机号是谁的", "privacy"),
    ("我想知道竞争对手公司的商业秘密", "secrets"),
    ("我朋友借了我两万块钱一直不还，你们帮我要回来", "non_government"),
    ("我跟合伙人分钱分不拢，你们给评评理", "non_government"),
    ("帮我点个外卖吧", "non_government"),
    ("我和老公闹离婚，财产怎么分你们帮我做主", "non_government"),
)

ELDERLY = ("嗯……那个，", "喂，喂，你好，", "哎，同志啊，", "我跟你说啊，")


def _fill(template: str, rnd: random.Random) -> str:
    return template.format(
        who=rnd.choice(WHO), child=rnd.choice(CHILD), home=rnd.choice(HOME),
        room=rnd.choice(ROOM), road=rnd.choice(ROAD), place=rnd.choice(PLACE),
        spot=rnd.choice(SPOT),
    )  # fmt: skip


def build() -> list[Row]:
    """Every row, the same each run (a fixed seed)."""
    rnd = random.Random(12345)
    out: list[Row] = []

    def rate() -> float:
        return rnd.choice((0.85, 1.0, 1.0, 1.15))

    for line, phrasings in PRESENT.items():
        for g, tpl in enumerate(phrasings):
            for k in range(4):
                text = _fill(tpl, rnd)
                kind, r = "emergency", rate()
                if k == 3:
                    text, kind, r = rnd.choice(ELDERLY) + text, "emergency-elderly", 0.75
                out.append(Row(f"e{line}-{g:02d}-{k}", f"e{line}-{g}", kind, r, text, line))
    for g, (tpl, typ, seat, dept) in enumerate(NOT_NOW):
        for k in range(3):
            out.append(Row(f"past-{g:02d}-{k}", f"past-{g}", "not-now", rate(),
                           _fill(tpl, rnd), "", typ, seat, dept))  # fmt: skip
    for g, (tpl, typ, seat, dept) in enumerate(MATTERS):
        for k in range(3):
            text, kind, r = _fill(tpl, rnd), "matter", rate()
            if k == 2:
                text, kind, r = rnd.choice(ELDERLY) + text, "matter-elderly", 0.75
            out.append(Row(f"m-{g:02d}-{k}", f"m-{g}", kind, r, text, "", typ, seat, dept))
    for g, tpl in enumerate(ENUM):
        for k, (a, b, depts) in enumerate(PAIRS):
            if (g + k) % 2:
                continue
            out.append(Row(f"two-{g}-{k}", f"two-{g}", "two-demands", rate(),
                           tpl.format(a=a, b=b), department=depts, demands=2))  # fmt: skip
    for g, (text, typ, seat, dept) in enumerate(DETAIL):
        out.append(Row(f"one-{g}", f"one-{g}", "one-demand", rate(), text, "", typ, seat, dept))
    for g, (text, key) in enumerate(OUT_OF_SCOPE):
        out.append(Row(f"oos-{g:02d}", f"oos-{g}", "out-of-scope", rate(), text, scope=key))
    return out


def write(path: Path = TSV) -> int:
    """Write the development set TSV; returns the number of rows."""
    rows = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(COLUMNS)
        for r in rows:
            w.writerow([r.id, r.group, r.split, r.kind, r.rate, r.text, r.emergency, r.type,
                        r.seat, r.department, r.demands, r.scope])  # fmt: skip
    return len(rows)


def rows(split: str | None = None, path: Path = TSV) -> list[dict[str, str]]:
    """The committed rows as dicts (``split``: ``dev``/``held``/``None`` for all)."""
    with path.open(encoding="utf-8") as f:
        data = list(csv.DictReader(f, delimiter="\t"))
    return [r for r in data if split is None or r["split"] == split]


if __name__ == "__main__":
    n = write(Path(sys.argv[1]) if len(sys.argv) > 1 else TSV)
    print(f"{n} utterances written")
