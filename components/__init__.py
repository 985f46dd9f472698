"""The studio's Gradio UI: one module per tab, each with build(). Calls studio/ only; never the ML stack."""
