"""Performance data as the Monitoring Plugins guidelines spell it ("Performance data":
``'label'=value[UOM];[warn];[crit];[min];[max]``; quotes around a label with a space, a
quote inside doubled, no ``=`` in a label)."""

from stepflow_top.live.checks import Perf


def test_a_plain_label_is_not_quoted_and_bytes_say_b():
    assert str(Perf("wal_bytes", 4096, "B")) == "wal_bytes=4096B;;;0"
    assert str(Perf("lost", None, warn="0")) == "lost=U;0;;0"


def test_a_label_with_a_space_or_a_quote_is_quoted():
    assert str(Perf("night shift:lost", 2, warn="0")) == "'night shift:lost'=2;0;;0"
    assert str(Perf("bob's:running", 1)) == "'bob''s:running'=1;;;0"


def test_a_store_prefix_and_an_equals_sign():
    assert str(Perf("db_bytes", 57344, "B").of_store("prod")) == "prod:db_bytes=57344B;;;0"
    assert str(Perf("running", 0).of_store("a=b")) == "a_b:running=0;;;0"
