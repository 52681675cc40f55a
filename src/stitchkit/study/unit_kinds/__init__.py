"""The built-in study unit kinds, one module per kind: its config section (``SECTION``, when configured), its
parameter record (:class:`~..params.UnitParams`), its planner (``plan(ctx, planned)``, :mod:`..planning`) and
its run function, declared with ``@declare("unit_kind", KIND, help=…, title=…, record=…, planner=…, order=…)``
(:mod:`stitchkit.declarations`; the metadata's keys are :data:`stitchkit.study.units.KIND_METADATA`), and
what the report says about it.

Each run function is a thin call into the library, writing its artifacts into the unit's folder and
returning metrics, artifacts, conventions and the content hashes of the networks. The modules import
no torch until a unit runs (the study package, and with it planning and the records, stays torch-free:
pool workers set their thread counts before torch loads), so the library is imported inside the run
functions. The plan (:mod:`..plan`), the schema (:data:`..config.SCHEMA`), the registry
(:func:`..units.unit_kind`) and the report read the declarations; adding a kind is adding one module here
(``CONTRIBUTING.md``).
"""
