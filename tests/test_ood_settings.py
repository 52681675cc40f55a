"""The OOD test's settings records (each option declared and checked once, built by keywords only) and the
per-stitch reference mode of the one scoring path, checked against numbers computed here."""

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import stitchkit
from stitchkit.api.ood import OODTestSettings
from stitchkit.errors import StitchkitError
from stitchkit.models import get_model
from stitchkit.ood.detectors import make_detector
from stitchkit.ood.evaluate import DetectorCheckSettings, evaluate_stitched
from stitchkit.ood.metrics import OODConvention, ood_metrics
from stitchkit.ood.settings import DetectorFit, PassOptions
from stitchkit.ood.stitched import ResultsOODSettings
from stitchkit.uncertainty.bootstrap import BootstrapSpec


def test_records_are_built_by_keywords_and_check_each_of_their_fields():
    with pytest.raises(TypeError):
        OODConvention("ood")  # keyword construction only
    with pytest.raises(StitchkitError, match="unknown positive class 'both'"):
        OODConvention(positive="both")
    with pytest.raises(StitchkitError, match="unknown FPR rule 'nearest'"):
        OODConvention(fpr_rule="nearest")
    with pytest.raises(StitchkitError, match=r"TPR level must be in \(0, 1\], got 1.5"):
        OODConvention(tpr=1.5)
    with pytest.raises(StitchkitError, match="batch size must be at least 1, got 0"):
        PassOptions(batch_size=0)
    with pytest.raises(StitchkitError, match="training_free takes a list"):
        DetectorFit(training_free="knn")
    # a settings record of a whole test runs the checks of every record it carries
    cases = [
        (dict(positive="x"), "unknown positive class"),
        (dict(workers=-1), "loader workers"),
        (dict(training_free="knn"), "training_free takes a list"),
        (dict(bootstrap=-2), "bootstrap resamples"),
    ]
    for bad, message in cases:
        with pytest.raises(StitchkitError, match=message):
            ResultsOODSettings(**bad)
    with pytest.raises(StitchkitError, match="unknown FPR rule"):
        DetectorCheckSettings(fpr_rule="x")
    s = ResultsOODSettings(bootstrap=7, positive="ood", batch_size=8)
    assert s.bootstrap == BootstrapSpec(resamples=7) and s.device == "auto" and DetectorCheckSettings().device == "cpu"
    assert isinstance(s, OODConvention) and isinstance(s, PassOptions) and isinstance(s, DetectorFit)
    assert s.options() == {"positive": "ood", "tpr": 0.95, "fpr_rule": "closest"}


def test_the_per_stitch_mode_scores_given_activations_as_computed_here():
    gen = torch.Generator().manual_seed(0)
    genuine = torch.randn(40, 6, generator=gen)
    stitched = 1.5 * torch.randn(30, 6, generator=gen) + 0.5
    labels = torch.randint(0, 3, (30,), generator=gen)
    logits = torch.randn(30, 3, generator=gen)
    detector = make_detector("mahalanobis").fit(genuine, torch.randint(0, 3, (40,), generator=gen))
    id_scores = detector.predict(genuine).numpy()
    expected = detector.predict(stitched).numpy()
    norms = np.sqrt((stitched.double().numpy() ** 2).sum(axis=1))
    convention = OODConvention(positive="ood", tpr=0.9, fpr_rule="at_least")
    end = nn.Identity()  # logits are given: the end network never runs

    batches = [(stitched[i : i + 8], labels[i : i + 8], logits[i : i + 8]) for i in range(0, 30, 8)]
    res = evaluate_stitched(
        end, "layer", detector, batches, id_scores={"mahalanobis": id_scores}, convention=convention
    )
    assert res.n == 30
    assert res.accuracy == pytest.approx(float((logits.argmax(1) == labels).double().mean()), abs=1e-12)
    np.testing.assert_allclose(res.ood_scores["mahalanobis"], expected, rtol=1e-6)
    np.testing.assert_allclose(res.norms, norms, rtol=1e-5)
    m = res.metrics["mahalanobis"]
    reference = ood_metrics(id_scores, expected, positive="ood", tpr=0.9, fpr_rule="at_least")
    assert (m.auroc, m.aupr, m.fpr95) == pytest.approx((reference.auroc, reference.aupr, reference.fpr95), abs=1e-12)
    assert (m.positive, m.tpr_level, m.fpr_rule) == ("ood", 0.9, "at_least")

    unlabelled = evaluate_stitched(
        end, "layer", {"mahalanobis": detector}, [stitched[:16], stitched[16:]], id_scores={"mahalanobis": id_scores}
    )
    assert unlabelled.n == 30 and math.isnan(unlabelled.accuracy)  # no labels: no accuracy, every sample scored
    np.testing.assert_allclose(unlabelled.ood_scores["mahalanobis"], expected, rtol=1e-6)
    with pytest.raises(StitchkitError, match="no stitched activations"):
        evaluate_stitched(end, "layer", detector, [], id_scores={"mahalanobis": id_scores})
    with pytest.raises(StitchkitError, match="no ID scores for detector"):
        evaluate_stitched(end, "layer", detector, batches, id_scores={})


def _small_cnn(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return get_model("small_cnn", num_classes=2, in_channels=1, input_size=(8, 8), width=2).eval()


def test_ood_test_takes_its_options_as_keywords_or_as_a_settings_record():
    gen = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.rand(24, 1, 8, 8, generator=gen), torch.arange(24) % 2)
    grid = stitchkit.direct_match(_small_cnn(0), _small_cnn(1), "relu2", "relu2", data, fit_samples=16, device="cpu")
    by_keywords = stitchkit.ood_test(grid, detector_fit_samples=16, test_samples=16, positive="ood", tpr=0.9)
    record = OODTestSettings(detector_fit_samples=16, test_samples=16, positive="ood", tpr=0.9)
    by_record = stitchkit.ood_test(grid, settings=record)
    overridden = stitchkit.ood_test(grid, settings=record, positive="id")  # keywords apply to the record
    for metric in ("auroc", "aupr", "fpr95", "accuracy"):
        np.testing.assert_array_equal(by_record.matrix(metric).to_numpy(), by_keywords.matrix(metric).to_numpy())
    assert by_record.options["positive"] == "ood" and overridden.options["positive"] == "id"
    assert by_record.options["tpr"] == 0.9 and by_record.options["detector_fit_samples"] == 16
    unknown = "unknown option 'detector_fit_sample' of stitchkit.ood_test; known options: .*detector_fit_samples"
    with pytest.raises(StitchkitError, match=unknown):
        stitchkit.ood_test(grid, detector_fit_sample=16)
    with pytest.raises(StitchkitError, match="stitchkit.ood_test: tpr must be a number"):
        stitchkit.ood_test(grid, tpr="95%")
