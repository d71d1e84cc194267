# ruff: noqa: E501  (Chinese sentences are kept whole, not split at 100 columns)
"""The Chinese set of dashboards: each dashboard again, with Chinese titles, descriptions,
legends and label values, amounts in 万元 and the Beijing time zone.

Generated from the English dashboards (so both sets always show the same queries): panel
texts are looked up in :data:`TEXT` (an English text without a translation stays English),
label values shown in legends get display names (region names from GB/T 2260 via
dfip.i18n), and amounts in yuan become 万元 (the query divided by 10,000, unit suffix 万元).
"""

from __future__ import annotations

import copy
from typing import Any

from grafana_foundation_sdk.models.dashboard import (
    Dashboard,
    DashboardFieldConfigSourceOverrides,
    DynamicConfigValue,
    FieldConfigSource,
    MatcherConfig,
    Panel,
    RowPanel,
)

from deploy.grafana.dashboards_src.layout import DashboardSpec, assemble
from dfip.i18n import region_name
from schemas.enums import Region

__all__ = ["TEXT", "VALUES", "localise", "zh_file_name", "zh_uid"]

WAN = 10_000  # yuan per 万元
_CNY_UNITS = {"currency:¥": "suffix: 万元", "currency:¥/s": "suffix: 万元/秒"}

TEXT: dict[str, str] = {
    # dashboards, rows, variables
    "DFIP · Financial centre": "DFIP · 金融中心",
    "How payments and credit from banks and fintech firms reach enterprises, by "
    "digitalisation band, region, sector and institution type.": (
        "银行与金融科技机构的支付与信贷如何触达企业：按数字化水平、地区、行业与机构类型。"
    ),
    "DFIP · Platform health": "DFIP · 平台运行状况",
    "Whether the stream workers keep up and account for every record: throughput, lag, dead "
    "letters, late events, latency and rebalances, per worker.": (
        "流处理节点是否跟上并核对每一条记录：吞吐、积压、死信、迟到事件、延迟与再均衡，按节点。"
    ),
    "Data source": "数据源",
    "Digitalisation band": "数字化水平",
    "Region": "地区",
    "Institution type": "机构类型",
    "Headline figures": "核心指标",
    "Digitalisation": "数字化",
    "Regions and sectors": "地区与行业",
    "Banks, fintech firms and joint lending": "银行、金融科技机构与联合贷款",
    "Credit risk": "信用风险",
    "Cross-border e-commerce": "跨境电商",
    # financial centre: titles
    "Payments booked": "支付金额",
    "Transactions": "交易笔数",
    "Outstanding loan principal": "贷款余额",
    "NPL ratio": "不良贷款率",
    "Loan approval ratio": "贷款审批通过率",
    "Weighted average lending rate": "加权平均贷款利率",
    "Fintech share of new lending": "金融科技机构新增贷款占比",
    "Digital-credit share": "数字化企业信贷占比",
    "Lending concentration (HHI by region)": "贷款集中度（地区 HHI）",
    "Active loans": "存续贷款笔数",
    "Active borrowers": "存续借款企业数",
    "Inclusive SME lending": "普惠型小微企业贷款发放",
    "Digital share against the province's digital-economy target": "数字化占比与全省数字经济目标",
    "Payments by digitalisation band": "按数字化水平的支付金额",
    "Payments booked by band": "按数字化水平的支付金额累计",
    "Disbursed principal by band": "按数字化水平的贷款发放",
    "Outstanding principal by band": "按数字化水平的贷款余额",
    "Enterprises scored by band": "按数字化水平的已评估企业数",
    "NPL ratio by band": "按数字化水平的不良贷款率",
    "Approval ratio by band": "按数字化水平的审批通过率",
    "Weighted average lending rate by band": "按数字化水平的加权平均利率",
    "Payments booked by region": "按地区的支付金额",
    "Disbursed principal by region": "按地区的贷款发放",
    "Transactions by sector": "按行业的交易笔数",
    "Enterprises scored by sector": "按行业的已评估企业数",
    "New lending by institution type": "按机构类型的新增贷款",
    "NPL ratio by institution type": "按机构类型的不良贷款率",
    "Approval ratio by institution type": "按机构类型的审批通过率",
    "Weighted average lending rate by institution type": "按机构类型的加权平均利率",
    "Payments booked by institution type": "按机构类型的支付金额",
    "Disbursed principal by institution type": "按机构类型的贷款发放",
    "Inclusive SME lending by institution type": "按机构类型的普惠型小微企业贷款",
    "Outstanding principal by risk class": "按五级分类的贷款余额",
    "Past-due principal by days past due": "按逾期天数的逾期贷款余额",
    "Principal flow": "本金流量核对",
    "Cross-border e-commerce payments by customs mode": "按海关监管方式的跨境电商支付笔数",
    "Cross-border e-commerce amount by customs mode": "按海关监管方式的跨境电商支付金额",
    "Cross-border e-commerce amount per second": "跨境电商支付金额（每秒）",
    # financial centre: descriptions
    "CNY amount of all booked transactions (credits and debits) since the stream began, "
    "converted at the event day's FX rate.": "自数据流开始以来全部入账交易（收入与支出）的人民币金额，按事件当日汇率折算。",
    "Number of booked transactions since the stream began (duplicates and dead-lettered "
    "records excluded).": "自数据流开始以来的入账交易笔数（不含重复记录与死信记录）。",
    "Principal of all active loans, CNY at each loan's disbursement-day rate.": (
        "全部存续贷款的本金，按各笔贷款发放日汇率折算为人民币。"
    ),
    "Non-performing (substandard + doubtful + loss) over all outstanding principal. Red above "
    "the 5 % regulatory limit.": "不良贷款（次级＋可疑＋损失）占全部贷款余额的比例；超过 5% 监管红线时显示红色。",
    "Approved over approved + rejected applications (withdrawn ones are not a lender's "
    "decision and are left out).": "批准笔数 ÷（批准＋拒绝）笔数；撤回的申请不是贷款机构的决定，不计入。",
    "Annual rate of all disbursed loans, weighted by principal: Σ principal x rate / Σ "
    "principal.": "全部已发放贷款按本金加权的年利率：Σ本金×利率 ÷ Σ本金。",
    "Principal disbursed by fintech firms over all disbursed principal (joint bank + platform "
    "loans are their own type).": "金融科技机构发放的本金占全部发放本金的比例（银行与平台联合贷款单列）。",
    "Outstanding principal owed by L3/L4 (digitally mature) enterprises over all outstanding "
    "principal; the band is the one at disbursement.": "L3/L4（数字化成熟）企业的贷款余额占全部贷款余额的比例；按发放时的数字化水平。",
    "Herfindahl-Hirschman index of disbursed principal over the 11 prefecture cities + other, "
    "on the 0-10,000 scale: < 1,500 unconcentrated, > 2,500 highly concentrated.": (
        "按 11 个地级市及其他地区计算的贷款发放赫芬达尔—赫希曼指数（0–10,000）：低于 1,500 为分散，高于 2,500 为高度集中。"
    ),
    "Disbursed loans not yet closed or written off.": "已发放且尚未结清或核销的贷款笔数。",
    "Distinct enterprises with at least one active loan.": "至少有一笔存续贷款的企业数。",
    "Principal disbursed as inclusive SME loans (single credit line under CNY 10 million, "
    "PBOC definition).": "作为普惠型小微企业贷款发放的本金（单户授信总额 1000 万元及以下，人民银行口径）。",
    "Share of outstanding credit and of booked payments that goes to L3/L4 enterprises, drawn "
    "against Zhejiang's digital economy: 41.5 % of GDP in 2018 (lower dashed line) and the "
    "target of over 55 % by 2022 (upper dashed line and the target series).": (
        "贷款余额与支付金额中流向 L3/L4 企业的占比，对照浙江省数字经济：2018 年占 GDP 41.5%（下方虚线），2022 年目标超过 55%（上方虚线与目标序列）。"
    ),
    "Booked CNY amount per second (5-minute rate) by the enterprise's band as of each "
    "payment's event time.": "每秒入账人民币金额（5 分钟速率），按每笔支付发生时企业的数字化水平。",
    "CNY amount booked since the stream began, by digitalisation band.": (
        "自数据流开始以来的入账金额，按数字化水平。"
    ),
    "Principal disbursed since the stream began, by the borrower's band at disbursement.": (
        "自数据流开始以来发放的本金，按借款企业发放时的数字化水平。"
    ),
    "Principal of active loans by the borrower's band at disbursement.": (
        "存续贷款本金，按借款企业发放时的数字化水平。"
    ),
    "Enterprises by the band of their newest digitalisation assessment.": (
        "按最新一次数字化评估水平统计的企业数。"
    ),
    "Non-performing over outstanding principal, by the borrower's band.": (
        "不良贷款占贷款余额的比例，按借款企业的数字化水平。"
    ),
    "Approved over approved + rejected applications, by the applicant's band.": (
        "批准 ÷（批准＋拒绝），按申请企业的数字化水平。"
    ),
    "Principal-weighted annual rate of disbursed loans, by the borrower's band.": (
        "已发放贷款按本金加权的年利率，按借款企业的数字化水平。"
    ),
    "CNY amount booked by the enterprise's prefecture city (from its USCC), `other` outside "
    "Zhejiang.": "按企业所在地级市（由统一社会信用代码得出）的入账金额；浙江省外为“其他地区”。",
    "Principal disbursed by the borrower's prefecture city; the lending concentration (HHI) is "
    "computed over these shares.": "按借款企业所在地级市的发放本金；贷款集中度（HHI）按这些份额计算。",
    "Booked transactions by the enterprise's GB/T 4754 section as of event time (`unknown` "
    "when not yet scored).": "按事件发生时企业的国民经济行业门类（GB/T 4754）统计的交易笔数；未评估为“未知”。",
    "Enterprises by the GB/T 4754 section of their newest assessment.": (
        "按最新评估的国民经济行业门类（GB/T 4754）统计的企业数。"
    ),
    "Principal disbursed per second (5-minute rate) by banks, fintech firms and joint (bank + "
    "platform) lending.": "每秒发放本金（5 分钟速率），按银行、金融科技机构与联合贷款（银行＋平台）。",
    "Fintech share of all principal disbursed since the stream began, and of the principal "
    "disbursed in the last hour.": "金融科技机构在自数据流开始以来及最近一小时发放本金中的占比。",
    "Non-performing over outstanding principal per lender type; the dashed line is the 5 % "
    "limit the DfipNplRatioHigh alert watches.": "各类贷款机构的不良贷款率；虚线为 DfipNplRatioHigh 告警监测的 5% 红线。",
    "Approved over approved + rejected applications per lender type.": (
        "各类贷款机构的批准 ÷（批准＋拒绝）。"
    ),
    "Principal-weighted annual rate of everything each lender type disbursed.": (
        "各类贷款机构全部发放贷款按本金加权的年利率。"
    ),
    "CNY amount booked through banks, fintech firms and joint channels.": (
        "通过银行、金融科技机构与联合渠道入账的人民币金额。"
    ),
    "Principal disbursed since the stream began, per lender type.": (
        "自数据流开始以来各类贷款机构发放的本金。"
    ),
    "Principal disbursed as inclusive SME loans (< CNY 10 million), per lender type.": (
        "各类贷款机构发放的普惠型小微企业贷款本金（1000 万元及以下）。"
    ),
    "Principal of active loans by effective risk class: the worse of the reported class and "
    "the class implied by days past due.": "存续贷款本金按有效风险分类：报送分类与逾期天数所对应分类中较差者。",
    "Non-performing over all outstanding principal; dashed line: the 5 % limit.": (
        "不良贷款占全部贷款余额的比例；虚线：5% 红线。"
    ),
    "Outstanding principal of loans past due, by bucket (1-29, 30-59, 60-89, 90+ days).": (
        "逾期贷款余额，按逾期天数区间（1–29、30–59、60–89、90 天以上）。"
    ),
    "Disbursed = repaid + written off + outstanding holds to the fen; a gap between the lines "
    "points at a lost event.": "发放 = 已还 + 核销 + 余额，精确到分；曲线之间出现缺口说明有事件丢失。",
    "Payments carrying a customs supervision mode: 9610 retail direct mail, 9710 B2B direct "
    "export, 9810 export to overseas warehouse, 1210 bonded.": (
        "带海关监管方式的支付：9610 跨境电商零售直邮，9710 跨境电商 B2B 直接出口，9810 跨境电商出口海外仓，1210 保税电商。"
    ),
    "CNY amount of those payments, by customs mode.": "上述支付的人民币金额，按海关监管方式。",
    "CNY per second (5-minute rate) of cross-border e-commerce payments, by customs mode.": (
        "跨境电商支付每秒人民币金额（5 分钟速率），按海关监管方式。"
    ),
    # fixed legends
    "credit outstanding to L3/L4": "L3/L4 企业贷款余额占比",
    "payments of L3/L4": "L3/L4 企业支付占比",
    "province target 2022: digital economy > 55 % of GDP": "2022 年全省目标：数字经济占 GDP 超过 55%",
    "since the start": "自开始以来",
    "last hour": "最近一小时",
    "disbursed": "发放",
    "repaid": "已还",
    "written off": "核销",
    "outstanding": "余额",
    # platform health: titles (operators read the English descriptions)
    "Overview": "概览",
    "Throughput": "吞吐",
    "Lag and latency": "积压与延迟",
    "Dead letters, late events, duplicates": "死信、迟到事件与重复",
    "Rebalances and restores": "再均衡与状态恢复",
    "Workers up": "运行中的节点",
    "Workers ready": "就绪节点",
    "Partitions owned": "已分配分区",
    "Consumer lag": "消费积压",
    "Unaccounted records": "未核对记录",
    "Dead-lettered records": "死信记录",
    "Records per second by worker": "各节点每秒记录数",
    "Events per second by topic": "各主题每秒事件数",
    "Batches per second by worker": "各节点每秒批次数",
    "Batch duration p99 by worker": "各节点批处理耗时 p99",
    "Consumer lag by topic": "各主题消费积压",
    "Consumer lag by worker": "各节点消费积压",
    "Event latency": "事件延迟",
    "Dead letters per second by topic": "各主题每秒死信数",
    "Dead letters by error class": "按错误类别的死信数",
    "Duplicates per second by topic": "各主题每秒重复数",
    "Late events per second by topic": "各主题每秒迟到事件数",
    "Late share of received events": "迟到事件占比",
    "Rebalances by worker": "各节点再均衡次数",
    "Partitions owned by worker": "各节点分区数",
    "Last state restore by worker": "各节点最近一次状态恢复",
    "Worker up and ready": "节点运行与就绪",
    "late share": "迟到占比",
}  # fmt: skip

# GB/T 4754-2017 sections (门类)
_SECTORS = {
    "A": "农、林、牧、渔业", "B": "采矿业", "C": "制造业",
    "D": "电力、热力、燃气及水生产和供应业", "E": "建筑业", "F": "批发和零售业",
    "G": "交通运输、仓储和邮政业", "H": "住宿和餐饮业", "I": "信息传输、软件和信息技术服务业",
    "J": "金融业", "K": "房地产业", "L": "租赁和商务服务业", "M": "科学研究和技术服务业",
    "N": "水利、环境和公共设施管理业", "O": "居民服务、修理和其他服务业", "P": "教育",
    "Q": "卫生和社会工作", "R": "文化、体育和娱乐业", "S": "公共管理、社会保障和社会组织",
    "T": "国际组织", "unknown": "未知",
}  # fmt: skip

#: label → value → display name in the Chinese dashboards
VALUES: dict[str, dict[str, str]] = {
    "region": {r.value: region_name(r.value, "zh") for r in Region},
    "digitalization_band": {
        "unscored": "未评估", "l0": "L0", "l1": "L1", "l2": "L2", "l3": "L3", "l4": "L4",
    },
    "institution_type": {"bank": "银行", "fintech": "金融科技机构", "joint": "联合贷款"},
    "risk_class": {
        "normal": "正常", "special_mention": "关注", "substandard": "次级",
        "doubtful": "可疑", "loss": "损失",
    },
    "dpd_bucket": {"1_29": "1–29 天", "30_59": "30–59 天", "60_89": "60–89 天",
                   "90_plus": "90 天以上"},
    "customs_mode": {"9610": "9610 零售直邮", "9710": "9710 B2B 直接出口",
                     "9810": "9810 出口海外仓", "1210": "1210 保税电商"},
    "sector": {k: f"{k} {v}" if k != "unknown" else v for k, v in _SECTORS.items()},
}  # fmt: skip


def zh_uid(uid: str) -> str:
    return f"{uid}-zh"


def zh_file_name(file_name: str) -> str:
    return file_name.removesuffix(".json") + ".zh.json"


def _t(text: str | None) -> str | None:
    return TEXT.get(text, text) if text is not None else None


def _overrides(panel: Panel) -> list[DashboardFieldConfigSourceOverrides]:
    """Display names for the label values a ``{{label}}`` legend shows."""
    out = []
    for target in panel.targets or []:
        legend = str(getattr(target, "legend_format", "") or "")
        label = legend[2:-2] if legend.startswith("{{") and legend.endswith("}}") else ""
        for value, name in VALUES.get(label, {}).items():
            out.append(
                DashboardFieldConfigSourceOverrides(
                    matcher=MatcherConfig(id_val="byName", options=value),
                    properties=[DynamicConfigValue(id_val="displayName", value=name)],
                )
            )
    return out


def _panel(panel: Panel) -> None:
    panel.title = _t(panel.title) or ""
    panel.description = _t(panel.description)
    fc = panel.field_config or FieldConfigSource()
    unit = fc.defaults.unit if fc.defaults is not None else None
    scaled = unit in _CNY_UNITS
    if scaled and fc.defaults is not None:
        fc.defaults.unit = _CNY_UNITS[str(unit)]
    for target in panel.targets or []:
        legend = getattr(target, "legend_format", None)
        if legend and not legend.startswith("{{"):
            target.legend_format = _t(legend)  # type: ignore[attr-defined]
        if scaled:
            target.expr = f"({target.expr}) / {WAN}"  # type: ignore[attr-defined]
    fc.overrides = [*(fc.overrides or []), *_overrides(panel)]
    panel.field_config = fc


def localise(spec: DashboardSpec) -> Dashboard:
    """The Chinese dashboard of ``spec`` (uid and file name with a ``zh`` suffix)."""
    board = copy.deepcopy(assemble(spec))
    board.uid = zh_uid(spec.uid)
    board.title = _t(spec.title) or spec.title
    board.description = _t(spec.description)
    board.tags = [*(board.tags or []), "zh"]
    board.timezone = "Asia/Shanghai"  # reports in China are by Beijing time
    board.week_start = "monday"
    templating: Any = board.templating
    for variable in templating.list_val or []:
        variable.label = _t(variable.label)
    for item in board.panels or []:
        if isinstance(item, RowPanel):
            item.title = _t(item.title) or ""
            for nested in item.panels:
                _panel(nested)
        elif isinstance(item, Panel):
            _panel(item)
    return board
