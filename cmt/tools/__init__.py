"""The command-line tools: one module per console script (`commands.py`
lists them). The rest of `cmt` never imports from here."""
