"""The built-in input formats; importing this package registers every one of them."""

from adapters.parsers.camt import Camt052Parser, Camt053Parser, Camt054Parser, CamtParser
from adapters.parsers.csv_statement import CsvStatementParser
from adapters.parsers.fx_rates import CfetsParser, EcbParser, FxParser
from adapters.parsers.loans_jsonl import LoansJsonlParser
from adapters.parsers.mt940 import Mt940Parser
from adapters.parsers.obie import ObieParser
from adapters.parsers.psd2 import Psd2Parser
from adapters.parsers.scores_csv import ScoresCsvParser

__all__ = [
    "Camt052Parser",
    "Camt053Parser",
    "Camt054Parser",
    "CamtParser",
    "CfetsParser",
    "CsvStatementParser",
    "EcbParser",
    "FxParser",
    "LoansJsonlParser",
    "Mt940Parser",
    "ObieParser",
    "Psd2Parser",
    "ScoresCsvParser",
]
