"""The registered datasets, one module per dataset (or family of datasets sharing a loader).

Each module declares its datasets where their loader is defined, with
``@declare("dataset", NAME, num_classes=…, shape=…, description=…, …)`` (:mod:`stitchkit.declarations`;
the metadata's keys are :data:`stitchkit.data.catalog.METADATA`). The torch-free catalogue
(:mod:`stitchkit.data.catalog`: ``stitchkit datasets``, every name check) reads those declarations
without importing these modules; :mod:`stitchkit.data.registry` imports a module when its dataset is
loaded. Adding a dataset is adding one module here (``CONTRIBUTING.md``).
"""
