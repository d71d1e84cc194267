"""Chinese (the default for analysts) and English labels, and amounts in 万元/亿元.

Analysts at the financial centre read Chinese: reports and the CLI print Chinese labels and
amounts in 万元 (10^4 yuan) or 亿元 (10^8 yuan) when ``--lang zh`` is chosen; English keeps
yuan. Figures stay exact integers (fen) in every machine-readable column; only the display
is scaled. Region names in Chinese come from GB/T 2260 administrative division codes as
python-stdnum ships them (``stdnum/cn/loc.dat``, the codes of the Resident ID checks), looked
up by the prefecture code each region label stands for (schemas.uscc.ZHEJIANG_PREFECTURES).
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Decimal
from functools import cache
from typing import Literal

from stdnum import numdb

from schemas.uscc import ZHEJIANG_PREFECTURES

__all__ = [
    "LANGS",
    "LANG_HELP",
    "Lang",
    "amount",
    "gbt2260_name",
    "label",
    "parse_lang",
    "region_name",
]

Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = ("zh", "en")
LANG_HELP = "zh: Chinese labels, amounts in 万元/亿元; en: English, yuan."


def parse_lang(value: str) -> Lang:
    """A ``--lang`` option's value; anything else is a one-line usage error."""
    from core.errors import DfipError

    if value == "zh":
        return "zh"
    if value == "en":
        return "en"
    raise DfipError(f"--lang {value}: expected zh or en", exit_code=2)


_LABELS: dict[str, tuple[str, str]] = {
    # report figures
    "transactions": ("交易笔数", "transactions"),
    "transaction_amount": ("交易金额", "transaction amount"),
    "loan_disbursed_principal": ("贷款发放本金", "loans disbursed (principal)"),
    # institution types
    "bank": ("银行", "bank"),
    "fintech": ("金融科技机构", "fintech"),
    "joint": ("联合贷款", "joint"),
    # digitalisation bands (MIIT SME digital transformation levels)
    "unscored": ("未评估", "unscored"),
    "l0": ("L0 (<20)", "l0 (<20)"),
    "l1": ("L1 (20–40)", "l1 (20–40)"),
    "l2": ("L2 (40–60)", "l2 (40–60)"),
    "l3": ("L3 (60–80)", "l3 (60–80)"),
    "l4": ("L4 (≥80)", "l4 (≥80)"),
    # columns and words
    "period": ("期间", "period"),
    "figure": ("指标", "figure"),
    "institution_type": ("机构类型", "institution type"),
    "digitalization_band": ("数字化水平", "digitalisation band"),
    "value": ("数值", "value"),
    "amount": ("金额", "amount"),
    "count": ("笔", "count"),
    "day": ("日", "day"),
    "month": ("月", "month"),
    "quarter": ("季度", "quarter"),
    "report_title": ("数字金融期间报告", "DFIP period report"),
    "beijing_dates": ("按北京时间日期", "by Beijing date"),
    # exposure query
    "credit": ("流入", "credit"),
    "debit": ("流出", "debit"),
    "normal": ("正常", "normal"),
    "special_mention": ("关注", "special mention"),
    "substandard": ("次级", "substandard"),
    "doubtful": ("可疑", "doubtful"),
    "loss": ("损失", "loss"),
}

_WAN = Decimal(1_000_000)  # fen per 万元
_YI = Decimal(10_000_000_000)  # fen per 亿元
_VALIDITY = re.compile(r"^\[[0-9-]*\]")  # loc.dat marks names with their years: "[1983-]"


def label(key: str, lang: Lang) -> str:
    """The label of a figure, label value or word; unknown keys are shown as they are."""
    pair = _LABELS.get(key)
    if pair is None:
        return key
    return pair[0] if lang == "zh" else pair[1]


def amount(fen: int, lang: Lang) -> str:
    """An amount for display: zh → 万元 (亿元 from 1 亿), 2 decimals; en → yuan, exact."""
    if lang == "en":
        sign = "-" if fen < 0 else ""
        return f"{sign}{abs(fen) // 100:,}.{abs(fen) % 100:02d}"
    value = Decimal(fen)
    unit, per = ("亿元", _YI) if abs(value) >= _YI else ("万元", _WAN)
    scaled = (value / per).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    return f"{scaled.copy_abs() if scaled == 0 else scaled:,}{unit}"


@cache
def gbt2260_name(code: str) -> str | None:
    """The current Chinese name of a GB/T 2260 division code ("330100" → 杭州市)."""
    info = numdb.get("cn/loc").info(code)
    if len(info) < 2 or not info[1][1]:
        return None
    name = str(info[1][1].get("county", ""))
    return _VALIDITY.sub("", name) or None


def region_name(region: str, lang: Lang) -> str:
    """The name of a region label (``hangzhou`` …, ``other``) in the chosen language."""
    if lang == "en":
        return region.capitalize()
    for prefix, value in ZHEJIANG_PREFECTURES.items():
        if value.value == region:
            return gbt2260_name(prefix + "00") or region
    return "其他地区"
