"""The OpenAPI 3.1 description of the query API, served at ``/v1/openapi.json``.

``python -m streams.query.openapi`` writes docs/api/openapi.json; ``--check`` exits 1 when
the committed file differs (run by the test suite, like the other generated docs).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from core.version import __version__
from schemas.enums import DpdBucket, InstitutionType, Region, RiskClass
from schemas.uscc import USCC_PATTERN

__all__ = ["OPENAPI", "main", "render"]

PATH = Path(__file__).resolve().parents[2] / "docs" / "api" / "openapi.json"


def _enum(values: Any) -> dict[str, Any]:
    return {"type": "string", "enum": [v.value for v in values]}


_FEN = {"type": "integer", "description": "CNY fen (1/100 yuan), exact."}
_YUAN = {
    "type": "string",
    "pattern": "^-?[0-9]+\\.[0-9]{2}$",
    "description": "The same amount in yuan, an exact decimal string.",
}
_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}},
}


def _flow() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["count", "fen", "yuan"],
        "properties": {"count": {"type": "integer"}, "fen": _FEN, "yuan": _YUAN},
    }


_SCORE = {
    "type": "object",
    "required": ["assessed_at", "band", "sector"],
    "properties": {
        "assessed_at": {"type": "string", "format": "date-time"},
        "band": {"type": "string", "description": "Digitalisation band l0..l4."},
        "sector": {"type": "string", "description": "GB/T 4754 section (A..T)."},
    },
}

_LOAN = {
    "type": "object",
    "required": [
        "loan_id", "institution_type", "vintage_band", "currency", "outstanding",
        "outstanding_fen", "outstanding_yuan", "principal_fen", "principal_yuan",
        "days_past_due", "dpd_bucket", "risk_class", "reported_risk_class", "defaulted",
        "disbursed_at",
    ],
    "properties": {
        "loan_id": {"type": "string"},
        "institution_type": _enum(InstitutionType),
        "vintage_band": {
            "type": "string",
            "description": "Band of the borrower when the loan was disbursed (restated).",
        },
        "currency": {"type": "string", "description": "ISO 4217 code of the loan."},
        "outstanding": {
            "type": "string",
            "description": "Outstanding principal in the loan currency, exact decimal.",
        },
        "outstanding_fen": _FEN,
        "outstanding_yuan": _YUAN,
        "principal_fen": _FEN,
        "principal_yuan": _YUAN,
        "days_past_due": {"type": "integer", "minimum": 0},
        "dpd_bucket": _enum(DpdBucket),
        "risk_class": {
            **_enum(RiskClass),
            "description": "The stricter of the reported class and the class its DPD implies.",
        },
        "reported_risk_class": _enum(RiskClass),
        "defaulted": {"type": "boolean"},
        "disbursed_at": {"type": ["string", "null"], "format": "date-time"},
    },
}  # fmt: skip

_TOTALS = {
    "type": "object",
    "required": ["loans", "outstanding_fen", "outstanding_yuan", "past_due_fen", "past_due_yuan"],
    "properties": {
        "loans": {"type": "integer"},
        "outstanding_fen": _FEN,
        "outstanding_yuan": _YUAN,
        "past_due_fen": _FEN,
        "past_due_yuan": _YUAN,
    },
}

_ENTERPRISE = {
    "type": "object",
    "required": [
        "uscc", "region", "partition", "scores", "current", "loans", "loan_totals", "flows",
        "served_by",
    ],
    "properties": {
        "uscc": {"type": "string", "pattern": USCC_PATTERN},
        "region": _enum(Region),
        "partition": {"type": "integer", "description": "Partition of the USCC's topics."},
        "scores": {
            "type": "array",
            "items": _SCORE,
            "description": "Assessment versions kept for the as-of join, oldest first.",
        },
        "current": {"oneOf": [_SCORE, {"type": "null"}]},
        "loans": {"type": "array", "items": _LOAN, "description": "Active loans by id."},
        "loan_totals": {
            "type": "object",
            "additionalProperties": _TOTALS,
            "description": "Active loans by institution type (bank, fintech, joint).",
        },
        "flows": {
            "oneOf": [
                {
                    "type": "object",
                    "required": ["zone", "first_day", "last_day", "credit", "debit"],
                    "properties": {
                        "zone": {"const": "Asia/Shanghai"},
                        "first_day": {"type": "string", "format": "date"},
                        "last_day": {"type": "string", "format": "date"},
                        "credit": _flow(),
                        "debit": _flow(),
                    },
                    "description": (
                        "Counted transactions dated on Beijing days first_day..last_day "
                        "(30 days; last_day: the later of the partition's transactions "
                        "watermark's day and the enterprise's newest day)."
                    ),
                },
                {"type": "null"},
            ]
        },
        "served_by": {"type": "string", "description": "Worker id that answered."},
    },
}  # fmt: skip


def _response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "DFIP exposure query API",
        "version": __version__,
        "description": (
            "One enterprise's exposure, answered by any stream worker (forwarded to the "
            "worker owning the enterprise's partition). Authenticate with the worker's "
            "bearer token; behind an ingress that terminates mTLS, the ingress adds it "
            "(docs/api/README.md)."
        ),
    },
    "security": [{"bearer": []}],
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {"Enterprise": _ENTERPRISE, "Error": _ERROR},
    },
    "paths": {
        "/v1/enterprises/{uscc}": {
            "get": {
                "operationId": "getEnterprise",
                "summary": "Bands, active loans, loan totals and 30-day flows of one enterprise",
                "parameters": [
                    {
                        "name": "uscc",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": USCC_PATTERN},
                        "description": "Unified Social Credit Code (GB 32100-2015).",
                    }
                ],
                "responses": {
                    "200": _response(
                        "The committed state of the owning worker.",
                        {"$ref": "#/components/schemas/Enterprise"},
                    ),
                    "400": _response(
                        "Invalid USCC (check character) or malformed Authorization header.",
                        {"$ref": "#/components/schemas/Error"},
                    ),
                    "401": _response("No bearer token.", {"$ref": "#/components/schemas/Error"}),
                    "403": _response(
                        "Bearer token not accepted.", {"$ref": "#/components/schemas/Error"}
                    ),
                    "404": _response(
                        "Nothing is held for this enterprise (no assessment, no active loan, "
                        "no transaction in the last 30 days).",
                        {"$ref": "#/components/schemas/Error"},
                    ),
                    "503": {
                        **_response(
                            "Rebalance in progress, or the owner is not known or not reachable:"
                            " ask again after Retry-After seconds. Never a partial answer.",
                            {"$ref": "#/components/schemas/Error"},
                        ),
                        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                    },
                },
            }
        },
        "/v1/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "summary": "This description",
                "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1 document."}},
            }
        },
    },
}


def render() -> str:
    return json.dumps(OPENAPI, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = render()
    if "--check" in args:
        if not PATH.exists() or PATH.read_text(encoding="utf-8") != text:
            print(f"{PATH} is out of date: run `python -m streams.query.openapi`")
            return 1
        return 0
    PATH.parent.mkdir(parents=True, exist_ok=True)
    PATH.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
