"""The README's Python examples run as written and give what they say."""

import pathlib
import re

import numpy as np

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_examples_run_and_the_flow_tracks_adam_to_order_h_squared():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 2, "the README should show the optimizer and the flow examples"
    namespace: dict = {}
    exec(compile("\n".join(blocks), str(README), "exec"), namespace)
    # the sweep example: 2 learning rates × 4 values of β₂, one row each
    rows = namespace["result"].rows()
    assert len(rows) == 8 and {r["beta2"] for r in rows} == {0.9, 0.95, 0.99, 0.999}
    # the flow example: the order-1 flow is within a small multiple of h² of the iterates
    # (the order-0 flow, ε-signGD, is O(h) away, far above this)
    h = namespace["h"]
    error = namespace["ab"].flows.global_error(namespace["flow"], namespace["iterates"])
    assert np.isfinite(error) and error < 1e3 * h**2
