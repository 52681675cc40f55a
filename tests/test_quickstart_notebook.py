"""examples/quickstart.ipynb runs as it is, top to bottom, in a fresh kernel (nbclient + ipykernel)."""

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"


def test_the_quickstart_notebook_runs(monkeypatch):
    # the kernel inherits the environment: this checkout's code, one thread per process
    monkeypatch.setenv("PYTHONPATH", str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code")  # stored without outputs
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    ).execute()
    outputs = {i: cell.outputs for i, cell in enumerate(nb.cells) if cell.cell_type == "code"}
    assert not [o for out in outputs.values() for o in out if o.output_type == "error"]
    tables = [o for out in outputs.values() for o in out if o.output_type == "execute_result" and "text/html" in o.data]
    assert len(tables) >= 4  # the DM table, the TLM, CKA and AUROC matrices, shown as HTML tables
    text = "".join(
        o.data.get("text/plain", "") for out in outputs.values() for o in out if o.output_type == "execute_result"
    )
    assert "layer4.1" in text and "relative" in text
    images = [
        o
        for out in outputs.values()
        for o in out
        if o.output_type in ("execute_result", "display_data") and "image/png" in o.data
    ]
    assert images  # dm.plot() shows its heatmaps inline, with no %matplotlib magic
