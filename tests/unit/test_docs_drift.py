"""Generated docs match the code that defines them."""

from dfip import docs_gen


def test_configuration_and_metrics_docs_are_current() -> None:
    assert docs_gen.main(["--check"]) == 0, "run `python -m dfip.docs_gen`"
