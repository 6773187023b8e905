"""FID, KID and IS: the logic behind ``ganctl eval``, usable without the command line (the trainer calls it).

    reference = reference_stats("cifar10", "train", 32, 3, n=10_000, data_dir=None, weights=None, device=device)
    result = evaluate_generator(G, info.pixel_range, info.latent_dim, reference=reference, n=10_000,
                                device=device, batch_size=100, seed=0)
    result["fid"], result["kid_mean"], result["kid_std"], result["protocol"]

One module per concern:

    statistics.py         FID, KID and IS maths on features (NumPy/SciPy only)
    inception_weights.py  finding, downloading and checking the Inception weights
    features.py           the feature extractor: uint8 images → pool3 features, batch by batch
    reference.py          reference statistics of a dataset split or folder, cached on disk
    generated.py          a generator's images, made and measured one batch at a time
    evaluate.py           the comparison of two sides, and ``evaluate_generator`` for the trainer
    eval_run.py           the whole ``ganctl eval``: what to compare, resolved, then measured

Importing the package stays cheap (no torch) for the CLI.
"""

from __future__ import annotations

from ganctl.metrics import statistics
from ganctl.metrics.evaluate import compare, evaluate_generator
from ganctl.metrics.features import (
    RESIZE, InceptionFeatures, Progress, SideResult, extract, feature_extractor, no_progress, tensor_batches,
)
from ganctl.metrics.generated import generated_features
from ganctl.metrics.inception_weights import (
    OFFICIAL_SHA256, WEIGHT_NAMES, InceptionWeights, check_inception_weights, find_inception_weights,
    inception_score_refusal, resolve_weights,
)
from ganctl.metrics.reference import DEFAULT_N, ReferenceStats, default_cache_dir, reference_stats, side_from_stats
from ganctl.metrics.statistics import (
    FEATURE_DIM, check_fid_sample_count, feature_statistics, fid_from_features, frechet_distance, inception_score,
    kid_from_features,
)

