"""The model families of the zoo, one module per family: its build function, declared with
``@declare("model_family", FAMILY, title=…, members={NAME: …}, options=…)`` (:mod:`stitchkit.declarations`;
the metadata's keys are :data:`stitchkit.models.catalog.FAMILY_METADATA`).

The torch-free catalogue (:mod:`stitchkit.models.catalog`: ``stitchkit models``, every name check)
reads the declarations without importing these modules; :mod:`stitchkit.models.registry` imports a
family's module when one of its models is built. Adding a family is adding one module here
(``CONTRIBUTING.md``).
"""
