"""``python -m crm_score`` is ``crm-score``."""

from crm_score.cli import main

main()
