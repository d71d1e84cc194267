"""The "Financial centre" dashboard: payments and credit by digitalisation band, region,
sector and institution type, credit risk and cross-border e-commerce.

Every query reads a recording rule from deploy/prometheus/rules/ (which takes the max per
partition before summing; see docs/metrics.md) or, for the reference line, a constant.
"""

from __future__ import annotations

from deploy.grafana.dashboards_src.layout import DashboardSpec, Row
from deploy.grafana.dashboards_src.panels import (
    CNY,
    CNY_PER_S,
    Query,
    Step,
    bars,
    stat_panel,
    timeseries_panel,
)

__all__ = ["PROVINCE_DIGITAL_ECONOMY_2018", "PROVINCE_DIGITAL_ECONOMY_TARGET", "dashboard"]

# shared/DOMAIN.md, "Province figures from the seed": Zhejiang's digital economy was 41.5 % of
# the provincial economy in 2018; the target is over 55 % of GDP (4 trillion yuan) by 2022.
PROVINCE_DIGITAL_ECONOMY_2018 = 0.415
PROVINCE_DIGITAL_ECONOMY_TARGET = 0.55

# China's regulatory core indicator: NPL ratio at most 5 % (also the DfipNplRatioHigh alert).
NPL_LIMIT = 0.05

_BAND = "{{digitalization_band}}"
_TYPE = "{{institution_type}}"

_RATIO_STEPS = (Step(None, "blue"),)
_NPL_STEPS = (Step(None, "green"), Step(0.03, "orange"), Step(NPL_LIMIT, "red"))
# US DoJ/FTC reading of the HHI (x 10,000): < 1,500 unconcentrated, > 2,500 highly.
_HHI_STEPS = (Step(None, "green"), Step(1500, "orange"), Step(2500, "red"))


def _headline() -> Row:
    return Row(
        "Headline figures",
        [
            stat_panel(
                "Payments booked",
                "CNY amount of all booked transactions (credits and debits) since the "
                "stream began, converted at the event day's FX rate.",
                Query("dfip:transaction_amount_yuan:sum"),
                unit=CNY,
            ),
            stat_panel(
                "Transactions",
                "Number of booked transactions since the stream began (duplicates and "
                "dead-lettered records excluded).",
                Query("dfip:transactions:sum"),
                unit="short",
            ),
            stat_panel(
                "Outstanding loan principal",
                "Principal of all active loans, CNY at each loan's disbursement-day rate.",
                Query("dfip:loan_outstanding_principal_yuan:sum"),
                unit=CNY,
            ),
            stat_panel(
                "NPL ratio",
                "Non-performing (substandard + doubtful + loss) over all outstanding "
                "principal. Red above the 5 % regulatory limit.",
                Query("dfip:loan_npl:ratio"),
                unit="percentunit",
                steps=_NPL_STEPS,
                decimals=2,
            ),
            stat_panel(
                "Loan approval ratio",
                "Approved over approved + rejected applications (withdrawn ones are not a "
                "lender's decision and are left out).",
                Query("dfip:loan_approval:ratio"),
                unit="percentunit",
                steps=_RATIO_STEPS,
                decimals=1,
            ),
            stat_panel(
                "Weighted average lending rate",
                "Annual rate of all disbursed loans, weighted by principal: "
                "Σ principal x rate / Σ principal.",
                Query("dfip:loan_rate:weighted_avg"),
                unit="percentunit",
                steps=_RATIO_STEPS,
                decimals=2,
            ),
            stat_panel(
                "Fintech share of new lending",
                "Principal disbursed by fintech firms over all disbursed principal (joint "
                "bank + platform loans are their own type).",
                Query("dfip:loan_fintech_share:ratio"),
                unit="percentunit",
                steps=_RATIO_STEPS,
                decimals=1,
            ),
            stat_panel(
                "Digital-credit share",
                "Outstanding principal owed by L3/L4 (digitally mature) enterprises over all "
                "outstanding principal; the band is the one at disbursement.",
                Query("dfip:loan_digital_credit_share:ratio"),
                unit="percentunit",
                steps=(
                    Step(None, "red"),
                    Step(PROVINCE_DIGITAL_ECONOMY_2018, "orange"),
                    Step(PROVINCE_DIGITAL_ECONOMY_TARGET, "green"),
                ),
                decimals=1,
            ),
            stat_panel(
                "Lending concentration (HHI by region)",
                "Herfindahl-Hirschman index of disbursed principal over the 11 prefecture "
                "cities + other, on the 0-10,000 scale: < 1,500 unconcentrated, > 2,500 "
                "highly concentrated.",
                Query("dfip:loan_disbursed_principal_hhi_by_region:ratio * 10000"),
                unit="none",
                steps=_HHI_STEPS,
                decimals=0,
            ),
            stat_panel(
                "Active loans",
                "Disbursed loans not yet closed or written off.",
                Query("dfip:loans_active:sum"),
                unit="short",
            ),
            stat_panel(
                "Active borrowers",
                "Distinct enterprises with at least one active loan.",
                Query("dfip:borrowers_active:sum"),
                unit="short",
            ),
            stat_panel(
                "Inclusive SME lending",
                "Principal disbursed as inclusive SME loans (single credit line under "
                "CNY 10 million, PBOC definition).",
                Query(
                    "sum(dfip:loan_inclusive_sme_disbursed_principal_yuan:sum_by_institution_type)"
                ),
                unit=CNY,
            ),
        ],
    )


def _digitalisation() -> Row:
    return Row(
        "Digitalisation",
        [
            timeseries_panel(
                "Digital share against the province's digital-economy target",
                "Share of outstanding credit and of booked payments that goes to L3/L4 "
                "enterprises, drawn against Zhejiang's digital economy: 41.5 % of GDP in "
                "2018 (lower dashed line) and the target of over 55 % by 2022 (upper dashed "
                "line and the target series).",
                [
                    Query("dfip:loan_digital_credit_share:ratio", "credit outstanding to L3/L4"),
                    Query("dfip:transaction_amount_digital_share:ratio", "payments of L3/L4"),
                    Query(
                        f"vector({PROVINCE_DIGITAL_ECONOMY_TARGET})",
                        "province target 2022: digital economy > 55 % of GDP",
                    ),
                ],
                unit="percentunit",
                reference_lines=(
                    Step(PROVINCE_DIGITAL_ECONOMY_2018, "orange"),
                    Step(PROVINCE_DIGITAL_ECONOMY_TARGET, "green"),
                ),
                min_value=0,
                width=24,
            ),
            timeseries_panel(
                "Payments by digitalisation band",
                "Booked CNY amount per second (5-minute rate) by the enterprise's band as of "
                "each payment's event time.",
                [Query("dfip:transaction_amount_yuan:rate5m_by_digitalization_band", _BAND)],
                unit=CNY_PER_S,
                stacked=True,
            ),
            bars(
                "Payments booked by band",
                "CNY amount booked since the stream began, by digitalisation band.",
                Query("dfip:transaction_amount_yuan:sum_by_digitalization_band", _BAND),
                unit=CNY,
                width=12,
            ),
            bars(
                "Disbursed principal by band",
                "Principal disbursed since the stream began, by the borrower's band at "
                "disbursement.",
                Query("dfip:loan_disbursed_principal_yuan:sum_by_digitalization_band", _BAND),
                unit=CNY,
            ),
            bars(
                "Outstanding principal by band",
                "Principal of active loans by the borrower's band at disbursement.",
                Query("dfip:loan_outstanding_principal_yuan:sum_by_digitalization_band", _BAND),
                unit=CNY,
            ),
            bars(
                "Enterprises scored by band",
                "Enterprises by the band of their newest digitalisation assessment.",
                Query("dfip:enterprises_scored:sum_by_digitalization_band", _BAND),
                unit="short",
            ),
            bars(
                "NPL ratio by band",
                "Non-performing over outstanding principal, by the borrower's band.",
                Query("dfip:loan_npl:ratio_by_digitalization_band", _BAND),
                unit="percentunit",
                steps=_NPL_STEPS,
            ),
            bars(
                "Approval ratio by band",
                "Approved over approved + rejected applications, by the applicant's band.",
                Query("dfip:loan_approval:ratio_by_digitalization_band", _BAND),
                unit="percentunit",
                steps=_RATIO_STEPS,
            ),
            bars(
                "Weighted average lending rate by band",
                "Principal-weighted annual rate of disbursed loans, by the borrower's band.",
                Query("dfip:loan_rate:weighted_avg_by_digitalization_band", _BAND),
                unit="percentunit",
                steps=_RATIO_STEPS,
            ),
        ],
    )


def _regions_and_sectors() -> Row:
    return Row(
        "Regions and sectors",
        [
            bars(
                "Payments booked by region",
                "CNY amount booked by the enterprise's prefecture city (from its USCC), "
                "`other` outside Zhejiang.",
                Query("dfip:transaction_amount_yuan:sum_by_region", "{{region}}"),
                unit=CNY,
                height=10,
                width=6,
            ),
            bars(
                "Disbursed principal by region",
                "Principal disbursed by the borrower's prefecture city; the lending "
                "concentration (HHI) is computed over these shares.",
                Query("dfip:loan_disbursed_principal_yuan:sum_by_region", "{{region}}"),
                unit=CNY,
                height=10,
                width=6,
            ),
            bars(
                "Transactions by sector",
                "Booked transactions by the enterprise's GB/T 4754 section as of event time "
                "(`unknown` when not yet scored).",
                Query("dfip:transactions_by_sector:sum_by_sector", "{{sector}}"),
                unit="short",
                height=10,
                width=6,
            ),
            bars(
                "Enterprises scored by sector",
                "Enterprises by the GB/T 4754 section of their newest assessment.",
                Query("dfip:enterprises_scored:sum_by_sector", "{{sector}}"),
                unit="short",
                height=10,
                width=6,
            ),
        ],
    )


def _institutions() -> Row:
    return Row(
        "Banks, fintech firms and joint lending",
        [
            timeseries_panel(
                "New lending by institution type",
                "Principal disbursed per second (5-minute rate) by banks, fintech firms and "
                "joint (bank + platform) lending.",
                [Query("dfip:loan_disbursed_principal_yuan:rate5m_by_institution_type", _TYPE)],
                unit=CNY_PER_S,
                stacked=True,
            ),
            timeseries_panel(
                "Fintech share of new lending",
                "Fintech share of all principal disbursed since the stream began, and of the "
                "principal disbursed in the last hour.",
                [
                    Query("dfip:loan_fintech_share:ratio", "since the start"),
                    Query("dfip:loan_fintech_share:ratio_increase1h", "last hour"),
                ],
                unit="percentunit",
                min_value=0,
            ),
            timeseries_panel(
                "NPL ratio by institution type",
                "Non-performing over outstanding principal per lender type; the dashed line "
                "is the 5 % limit the DfipNplRatioHigh alert watches.",
                [Query("dfip:loan_npl:ratio_by_institution_type", _TYPE)],
                unit="percentunit",
                reference_lines=(Step(NPL_LIMIT, "red"),),
                min_value=0,
                width=8,
            ),
            timeseries_panel(
                "Approval ratio by institution type",
                "Approved over approved + rejected applications per lender type.",
                [Query("dfip:loan_approval:ratio_by_institution_type", _TYPE)],
                unit="percentunit",
                min_value=0,
                width=8,
            ),
            timeseries_panel(
                "Weighted average lending rate by institution type",
                "Principal-weighted annual rate of everything each lender type disbursed.",
                [Query("dfip:loan_rate:weighted_avg_by_institution_type", _TYPE)],
                unit="percentunit",
                width=8,
            ),
            bars(
                "Payments booked by institution type",
                "CNY amount booked through banks, fintech firms and joint channels.",
                Query("dfip:transaction_amount_yuan:sum_by_institution_type", _TYPE),
                unit=CNY,
            ),
            bars(
                "Disbursed principal by institution type",
                "Principal disbursed since the stream began, per lender type.",
                Query("dfip:loan_disbursed_principal_yuan:sum_by_institution_type", _TYPE),
                unit=CNY,
            ),
            bars(
                "Inclusive SME lending by institution type",
                "Principal disbursed as inclusive SME loans (< CNY 10 million), per lender type.",
                Query(
                    "dfip:loan_inclusive_sme_disbursed_principal_yuan:sum_by_institution_type",
                    _TYPE,
                ),
                unit=CNY,
            ),
        ],
    )


def _credit_risk() -> Row:
    return Row(
        "Credit risk",
        [
            timeseries_panel(
                "Outstanding principal by risk class",
                "Principal of active loans by effective risk class: the worse of the "
                "reported class and the class implied by days past due.",
                [
                    Query(
                        "dfip:loan_outstanding_principal_yuan:sum_by_risk_class",
                        "{{risk_class}}",
                    )
                ],
                unit=CNY,
                stacked=True,
            ),
            timeseries_panel(
                "NPL ratio",
                "Non-performing over all outstanding principal; dashed line: the 5 % limit.",
                [Query("dfip:loan_npl:ratio", "NPL ratio")],
                unit="percentunit",
                reference_lines=(Step(NPL_LIMIT, "red"),),
                min_value=0,
            ),
            bars(
                "Past-due principal by days past due",
                "Outstanding principal of loans past due, by bucket (1-29, 30-59, 60-89, "
                "90+ days).",
                Query("dfip:loan_past_due_principal_yuan:sum_by_dpd_bucket", "{{dpd_bucket}}"),
                unit=CNY,
                width=12,
            ),
            timeseries_panel(
                "Principal flow",
                "Disbursed = repaid + written off + outstanding holds to the fen; a gap "
                "between the lines points at a lost event.",
                [
                    Query("dfip:loan_disbursed_principal_yuan:sum", "disbursed"),
                    Query("dfip:loan_repaid_principal_yuan:sum", "repaid"),
                    Query("dfip:loan_written_off_principal_yuan:sum", "written off"),
                    Query("dfip:loan_outstanding_principal_yuan:sum", "outstanding"),
                ],
                unit=CNY,
            ),
        ],
    )


def _crossborder() -> Row:
    return Row(
        "Cross-border e-commerce",
        [
            bars(
                "Cross-border e-commerce payments by customs mode",
                "Payments carrying a customs supervision mode: 9610 retail direct mail, 9710 "
                "B2B direct export, 9810 export to overseas warehouse, 1210 bonded.",
                Query(
                    "dfip:crossborder_ecommerce_payments:sum_by_customs_mode", "{{customs_mode}}"
                ),
                unit="short",
            ),
            bars(
                "Cross-border e-commerce amount by customs mode",
                "CNY amount of those payments, by customs mode.",
                Query(
                    "dfip:crossborder_ecommerce_amount_yuan:sum_by_customs_mode",
                    "{{customs_mode}}",
                ),
                unit=CNY,
            ),
            timeseries_panel(
                "Cross-border e-commerce amount per second",
                "CNY per second (5-minute rate) of cross-border e-commerce payments, by "
                "customs mode.",
                [
                    Query(
                        "dfip:crossborder_ecommerce_amount_yuan:rate5m_by_customs_mode",
                        "{{customs_mode}}",
                    )
                ],
                unit=CNY_PER_S,
                stacked=True,
                width=8,
            ),
        ],
    )


def dashboard() -> DashboardSpec:
    return DashboardSpec(
        uid="dfip-financial-centre",
        title="DFIP · Financial centre",
        description=(
            "How payments and credit from banks and fintech firms reach enterprises, by "
            "digitalisation band, region, sector and institution type."
        ),
        file_name="financial-centre.json",
        rows=[
            _headline(),
            _digitalisation(),
            _regions_and_sectors(),
            _institutions(),
            _credit_risk(),
            _crossborder(),
        ],
        time_from="now-24h",
        refresh="1m",
    )
