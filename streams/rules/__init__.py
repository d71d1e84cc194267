"""Rules over the transaction stream: large-value and suspicious-pattern detection
(docs/aml-rules.md). One module per rule; `engine` runs them per partition."""

from streams.rules.base import Enterprise, Hit, Rule, Tx
from streams.rules.engine import RuleEngine, RulesState, build_alert, flags_of

__all__ = ["Enterprise", "Hit", "Rule", "RuleEngine", "RulesState", "Tx", "build_alert", "flags_of"]
