"""Inputs a person types into, in a tab that is not the one shown when the page loads.

Gradio's frontend draws a tab's components only when the tab is first opened, and one animation frame later sets
every one of them again to the props the page was built with (its "previously invisible children" pass). Whatever
a person typed in that frame is lost: on a busy machine the frame takes a third of a second, and the Chat tab's
max_new_tokens snapped back to 128 after 1500 was typed. A component built hidden is not part of that pass; shown by
a browser-side event when its tab opens, it is drawn once, with its initial value, and keeps what is typed from then
on. No server round trip: the event runs in the browser.

    message = gr.Textbox(label="Message", visible=False)
    reveal_on_open(tab, [message, *settings])    # built with visible=False, shown whenever `tab` is selected
"""

from __future__ import annotations

from collections.abc import Sequence

import gradio as gr

_SHOW = "{__type__: 'update', visible: true}"


def reveal_on_open(tab: gr.Tab | None, components: Sequence) -> None:
    """Show these hidden components each time `tab` is selected (the first time is the one that matters). Without
    a tab (a tab module built on its own, as some tests do) they are shown from the start."""
    if tab is None:
        for component in components:
            component.visible = True
        return
    tab.select(
        None,
        js=f"() => [{', '.join([_SHOW] * len(components))}]",
        outputs=list(components),
        queue=False,
        show_progress="hidden",
    )
