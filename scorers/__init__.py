"""Pure, synchronous scoring logic: no I/O, no asyncio; every function takes its time as input.

Profiles and their commutative deltas, RFM and its quintile scores and segments, BG/NBD and
Gamma-Gamma (P(alive), expected purchases, CLV), each customer's timeline of checkpoints and
alert rules, and the churn model: features, delayed labels, the online learner and its
prequential metrics.
"""

from scorers.alerts import AlertDraft, AlertPolicy
from scorers.bgnbd import (
    BgNbdFit,
    BgNbdParams,
    expected_next_purchase_time,
    expected_purchases,
    fit_bgnbd,
    p_alive,
    p_alive_crossing_time,
)
from scorers.churn_features import FEATURE_NAMES, RecentActivity, churn_features
from scorers.churn_labels import LabelPolicy
from scorers.churn_model import ChurnModel, ChurnScorer
from scorers.churn_scoring import ChurnModelRef, ChurnPolicy, ChurnScoring
from scorers.clv import customer_lifetime_value
from scorers.customer_state import CustomerState
from scorers.deltas import delta_for, epoch_seconds
from scorers.gamma_gamma import (
    GammaGammaFit,
    GammaGammaParams,
    expected_average_value,
    fit_gamma_gamma,
)
from scorers.learner import OnlineLearner
from scorers.prequential import PrequentialMetrics
from scorers.probability import ProbabilityModel, ProbabilityScores, fit_from_profiles
from scorers.probability_batch import BatchScores, high_value_cut, score_batch
from scorers.profile import Profile, ProfileDelta, apply_delta
from scorers.quintiles import QuintileSketch, RfmBoundaries
from scorers.rfm import Rfm, rfm
from scorers.segments import SegmentMap, load_segments
from scorers.timeline import Checkpoint, Timeline

__all__ = [
    "FEATURE_NAMES",
    "AlertDraft",
    "AlertPolicy",
    "BatchScores",
    "BgNbdFit",
    "BgNbdParams",
    "Checkpoint",
    "ChurnModel",
    "ChurnModelRef",
    "ChurnPolicy",
    "ChurnScorer",
    "ChurnScoring",
    "CustomerState",
    "GammaGammaFit",
    "GammaGammaParams",
    "LabelPolicy",
    "OnlineLearner",
    "PrequentialMetrics",
    "ProbabilityModel",
    "ProbabilityScores",
    "Profile",
    "ProfileDelta",
    "QuintileSketch",
    "RecentActivity",
    "Rfm",
    "RfmBoundaries",
    "SegmentMap",
    "Timeline",
    "apply_delta",
    "churn_features",
    "customer_lifetime_value",
    "delta_for",
    "epoch_seconds",
    "expected_average_value",
    "expected_next_purchase_time",
    "expected_purchases",
    "fit_bgnbd",
    "fit_from_profiles",
    "fit_gamma_gamma",
    "high_value_cut",
    "load_segments",
    "p_alive",
    "p_alive_crossing_time",
    "rfm",
    "score_batch",
]
