"""The stitching-layer types, one module each, every one declared at its class
(``@declare("stitching_layer", name, order=..., help=..., auto_for=...)``); :mod:`.base` holds what they
share and :mod:`.auto` the ``auto`` choice. Nothing here lists them: :mod:`stitchkit.stitching.layers`
builds a type by its declared name, and the command line and the study schema offer the declared names
(``CONTRIBUTING.md`` has the steps to add one)."""
