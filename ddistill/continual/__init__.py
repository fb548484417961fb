"""Continual learning with distilled memories (the paper's Table 4): task
streams, GEM, iCaRL, the learners and the runner. They import the core; the
core never imports them (tests/test_layout.py)."""
