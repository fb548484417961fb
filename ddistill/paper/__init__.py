"""The paper's experiments: baselines, its evaluation protocol, Tables 1 to 3,
Figure 3, the linear case and the pretraining runs. They import the core;
the core never imports them (tests/test_layout.py)."""
