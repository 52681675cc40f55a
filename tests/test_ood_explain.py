"""What explains an OOD verdict: the activation norms (per sample, their ratio stitched / genuine) and
the score distributions, streamed in the genuine pass, the per-stitch pass and the grouped pass, each
against an independent numpy computation on the same activations, and the grouped pass equal to the
stitch-by-stitch one."""

import math

import numpy as np
import pytest
import torch
from stitch_support import SHAPE, trained_resnet

from stitchkit.data import get_dataset
from stitchkit.data.loading import sample_subset
from stitchkit.models.layers import layered
from stitchkit.ood.evaluate import evaluate_stitched, fit_training_free, genuine_pass, genuine_scores
from stitchkit.ood.matrices import OODMatrices
from stitchkit.ood.settings import PassOptions
from stitchkit.ood.stitch_record import activation_norms
from stitchkit.ood.stitch_scoring import score_stitches
from stitchkit.results.ood_scores import score_panels
from stitchkit.stitching.grouped import GridPair
from stitchkit.stitching.stitcher import Stitcher

END = "layer3.0"
FRONTS = ["layer1.0", "layer2.1", "layer3.0"]


def numpy_norms(acts) -> np.ndarray:
    """Each sample's L2 norm over all of its values, in float64 numpy."""
    a = np.asarray(acts, dtype=np.float64)
    return np.sqrt((a.reshape(a.shape[0], -1) ** 2).sum(axis=1))


def numpy_summary(values) -> dict:
    v = np.asarray(values, dtype=np.float64)
    q25, q50, q75 = np.quantile(v, [0.25, 0.5, 0.75])
    return {"n": v.size, "mean": v.mean(), "min": v.min(), "q25": q25, "q50": q50, "q75": q75, "max": v.max()}


def assert_summary(summary, expected: dict, rel: float = 1e-5) -> None:
    got = summary.to_dict() if hasattr(summary, "to_dict") else summary
    assert got["n"] == expected["n"]
    for key in ("mean", "min", "q25", "q50", "q75", "max"):
        assert got[key] == pytest.approx(expected[key], rel=rel, abs=1e-6), key


@pytest.mark.parametrize("shape", [(5, 3, 4, 4), (5, 7, 6)])
def test_activation_norms_are_the_l2_norms_of_whole_samples(shape):
    acts = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(activation_norms(acts).numpy(), numpy_norms(acts.numpy()), rtol=1e-6)
    if len(shape) == 4:  # the grouped pass runs channels-last: the same norms
        np.testing.assert_allclose(
            activation_norms(acts.contiguous(memory_format=torch.channels_last)).numpy(),
            numpy_norms(acts.numpy()),
            rtol=1e-6,
        )


@pytest.fixture(scope="module")
def setting():
    model = trained_resnet(0)
    fit = sample_subset(get_dataset("digits", "train", augment=False), 100, seed=0)
    detectors = fit_training_free(model, [END], fit, names=["mahalanobis", "knn"], options={"knn": {"k": 5}})[END]
    test = sample_subset(get_dataset("digits", "test"), 48)
    stitchers = {}
    for i, front in enumerate(FRONTS):
        torch.manual_seed(i)
        stitchers[front] = Stitcher(model, model, front, END, "rc2c_pre", input_shape=SHAPE, init="rand").eval()
    with torch.no_grad():
        x = torch.stack([test[i][0] for i in range(len(test))])
        genuine_acts = layered(model).prefix(END)(x)
        stitched_acts = {f: s.stitch(s.front(x)) for f, s in stitchers.items()}
    return dict(
        model=model,
        detectors=detectors,
        test=test,
        stitchers=stitchers,
        x=x,
        genuine_acts=genuine_acts,
        stitched_acts=stitched_acts,
    )


def test_the_genuine_pass_streams_each_samples_norm(setting):
    genuine = genuine_pass(setting["model"], {END: setting["detectors"]}, setting["test"], PassOptions(batch_size=20))
    np.testing.assert_allclose(genuine.norms[END], numpy_norms(setting["genuine_acts"].numpy()), rtol=1e-5)
    plain = genuine_scores(setting["model"], {END: setting["detectors"]}, setting["test"], PassOptions(batch_size=20))
    for name in ("mahalanobis", "knn"):
        np.testing.assert_array_equal(plain[END][name], genuine.scores[END][name])  # the norms change no score
        np.testing.assert_allclose(
            genuine.scores[END][name],
            setting["detectors"][name].predict(setting["genuine_acts"]).numpy(),
            rtol=1e-4,
            atol=1e-5,
        )
    assert genuine_pass(setting["model"], {END: setting["detectors"]}, setting["test"], norms=False).norms == {}


def test_one_stitch_records_its_norm_ratio_and_both_score_distributions(setting):
    genuine = genuine_pass(setting["model"], {END: setting["detectors"]}, setting["test"], PassOptions(batch_size=20))
    acts = setting["stitched_acts"]["layer1.0"]
    labels = torch.tensor([setting["test"][i][1] for i in range(len(setting["test"]))])
    batches = [(acts[i : i + 20], labels[i : i + 20]) for i in range(0, len(acts), 20)]
    res = evaluate_stitched(
        setting["model"], END, setting["detectors"], batches, id_scores=genuine.scores[END], id_norms=genuine.norms[END]
    )
    stitched_norms, genuine_norms = numpy_norms(acts.numpy()), numpy_norms(setting["genuine_acts"].numpy())
    assert res.norm_ratio == pytest.approx(stitched_norms.mean() / genuine_norms.mean(), rel=1e-5)
    assert_summary(res.stitched_norm, numpy_summary(stitched_norms))
    assert_summary(res.genuine_norm, numpy_summary(genuine_norms))
    for name, m in res.metrics.items():
        assert_summary(m.ood_score_summary, numpy_summary(res.ood_scores[name]), rel=1e-12)
        assert_summary(m.id_score_summary, numpy_summary(genuine.scores[END][name]), rel=1e-12)
    record = res.to_dict()
    assert (
        record["norm_ratio"] == res.norm_ratio
        and record["stitched_norm"]["n"] == 48
        and record["genuine_norm"]["n"] == 48
    )
    assert set(record["metrics"]["knn"]["ood_score_summary"]) == {"n", "mean", "min", "q25", "q50", "q75", "max"}
    alone = evaluate_stitched(setting["model"], END, setting["detectors"], batches, id_scores=genuine.scores[END])
    assert math.isnan(alone.norm_ratio) and alone.genuine_norm is None and alone.to_dict()["genuine_norm"] is None


def test_the_grouped_pass_records_what_each_stitch_alone_does(setting):
    """Three stitches into one end layer scored together (one concatenated suffix and detector pass)
    against each stitch's own pass, and the matrices and score rows built from them."""
    genuine = genuine_pass(setting["model"], {END: setting["detectors"]}, setting["test"], PassOptions(batch_size=16))
    pairs = [GridPair(f, END, setting["stitchers"][f]) for f in FRONTS]
    grouped, largest = score_stitches(
        pairs,
        {END: setting["detectors"]},
        genuine.scores,
        setting["test"],
        id_norms=genuine.norms,
        scoring=PassOptions(device="cpu", batch_size=16),
        group_size=3,
    )
    assert largest == 3  # the concatenated path, not one stitch per pass
    labels = torch.tensor([setting["test"][i][1] for i in range(len(setting["test"]))])
    genuine_norms = numpy_norms(setting["genuine_acts"].numpy())
    for front, res in zip(FRONTS, grouped):
        acts = setting["stitched_acts"][front]
        alone = evaluate_stitched(
            setting["model"],
            END,
            setting["detectors"],
            [(acts[i : i + 16], labels[i : i + 16]) for i in range(0, 48, 16)],
            id_scores=genuine.scores[END],
            id_norms=genuine.norms[END],
        )
        assert res.accuracy == alone.accuracy and res.n == alone.n == 48
        assert res.norm_ratio == pytest.approx(alone.norm_ratio, rel=1e-5)
        assert res.norm_ratio == pytest.approx(numpy_norms(acts.numpy()).mean() / genuine_norms.mean(), rel=1e-5)
        assert_summary(res.stitched_norm, alone.stitched_norm.to_dict())
        assert res.genuine_norm == alone.genuine_norm
        for name in ("mahalanobis", "knn"):
            assert_summary(
                res.metrics[name].ood_score_summary, alone.metrics[name].ood_score_summary.to_dict(), rel=1e-4
            )
            assert res.metrics[name].id_score_summary == alone.metrics[name].id_score_summary
            assert res.metrics[name].auroc == pytest.approx(alone.metrics[name].auroc, abs=1e-9)

    matrices = OODMatrices(FRONTS, [END])
    for front, res in zip(FRONTS, grouped):
        matrices.add(front, END, res)
    assert matrices.matrix("norm_ratio") == [[r.norm_ratio] for r in grouped]
    assert matrices.matrix("median_score", "knn") == [[r.metrics["knn"].ood_score_summary.q50] for r in grouped]
    rows = matrices.score_rows()
    assert [(r["activations"], r["front_layer"], r["detector"]) for r in rows] == [
        ("genuine", None, "mahalanobis"),
        *[("stitched", f, "mahalanobis") for f in FRONTS],
        ("genuine", None, "knn"),
        *[("stitched", f, "knn") for f in FRONTS],
    ]
    assert_summary(rows[4], numpy_summary(genuine.scores[END]["knn"]), rel=1e-12)
    assert rows[5]["auroc"] == grouped[0].metrics["knn"].auroc and rows[4]["auroc"] is None
    panels = score_panels(rows, "knn")
    assert list(panels) == [END] and [b["label"] for b in panels[END]] == ["genuine", *FRONTS]
    assert (
        panels[END][0]["reference"]
        and panels[END][0]["note"] is None
        and panels[END][1]["note"] == f"{rows[5]['auroc']:.2f}"
    )
    text = matrices.format()
    assert "NORM RATIO" in text and "MEDIAN SCORE (knn" in text and "genuine" in text
