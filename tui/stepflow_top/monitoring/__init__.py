"""Files shipped for Prometheus and Grafana, printed by ``stepflow-top
--print-alert-rules`` and ``--print-grafana-dashboard``: ``alert_rules.yml``
(Prometheus alerting rules), ``alert_rules_test.yml`` (their ``promtool test rules``
unit tests) and ``grafana_dashboard.json``."""
