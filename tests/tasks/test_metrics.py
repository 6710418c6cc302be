"""Metrics against hand computations, on the documented 0-100 scale."""

from __future__ import annotations

import math

import numpy as np
import pytest

from peftspace.tasks import TaskError, compute_metrics, glue_average, main_score, task_spec


def test_mcc_by_hand():
    # TP=2, TN=2, FP=1, FN=1: (2*2 - 1*1) / sqrt(3*3*3*3) = 1/3
    metrics = compute_metrics(task_spec("cola"), [1, 1, 0, 0, 0, 1], [1, 1, 1, 0, 0, 0])
    assert metrics == {"mcc": pytest.approx(100 / 3)}
    assert main_score("cola", metrics) == pytest.approx(100 / 3)


def test_f1_and_accuracy_by_hand():
    # TP=2, FP=1, FN=1 -> precision = recall = 2/3 -> F1 = 2/3; 3 of 5 right
    metrics = compute_metrics("mrpc", [1, 0, 1, 1, 0], [1, 1, 1, 0, 0])
    assert metrics == {"f1": pytest.approx(200 / 3), "accuracy": pytest.approx(60.0)}
    assert main_score("mrpc", metrics) == pytest.approx((200 / 3 + 60) / 2)


def test_cb_macro_f1_by_hand():
    # class 0: TP=1 FP=1 FN=0 -> F1 2/3; class 1: TP=1 FP=0 FN=1 -> 2/3; class 2: TP=1 -> 1
    metrics = compute_metrics("cb", [0, 0, 1, 2], [0, 1, 1, 2])
    assert metrics["accuracy"] == pytest.approx(75.0)
    assert metrics["f1_macro"] == pytest.approx(100 * (2 / 3 + 2 / 3 + 1) / 3)


def test_pearson_and_spearman_on_a_tiny_example():
    # deviations (-1, 0, 1) and (-4/3, -1/3, 5/3): covariance sum 3, sums of squares 2 and 14/3
    metrics = compute_metrics("stsb", [1.0, 2.0, 3.0], [1.0, 2.0, 4.0])
    assert metrics["pearson"] == pytest.approx(100 * 3 / math.sqrt(2 * 14 / 3))
    assert metrics["spearman"] == pytest.approx(100.0)  # same order
    assert main_score("stsb", metrics) == pytest.approx((metrics["pearson"] + 100) / 2)


def test_a_constant_regression_prediction_scores_zero_and_text_numbers_are_read():
    assert compute_metrics("stsb", [2.5, 2.5, 2.5], [1.0, 2.0, 4.0]) == {"pearson": 0.0, "spearman": 0.0}
    assert compute_metrics("stsb", ["1.0", "2", "3"], [1.0, 2.0, 4.0])["spearman"] == pytest.approx(100.0)


def test_bleu_and_rouge_of_identical_texts_are_100():
    sentences = ["the cat sat on the mat today", "a quick brown fox jumps over the lazy dog"]
    assert compute_metrics("wmt16_en_ro", sentences, sentences) == {"bleu": pytest.approx(100.0)}
    assert compute_metrics("xsum", sentences, sentences) == {m: pytest.approx(100.0) for m in ("rouge1", "rouge2", "rougeL")}


def test_rouge_by_hand_and_bleu_of_unrelated_text():
    # unigrams: 2 of 3 shared each way -> 2/3; bigrams: "the cat" of 2 each way -> 1/2
    metrics = compute_metrics("xsum", ["the cat sat"], ["the cat ran"])
    assert metrics["rouge1"] == pytest.approx(200 / 3) and metrics["rouge2"] == pytest.approx(50.0)
    assert metrics["rougeL"] == pytest.approx(200 / 3)
    assert compute_metrics("wmt16_en_ro", ["zebra"], ["the cat sat on the mat"])["bleu"] == pytest.approx(0.0)


def test_multirc_f1a_and_em_by_hand():
    # question q1: 3 options all right; q2: 2 options, one wrong -> EM 1/2
    groups = ["q1", "q1", "q1", "q2", "q2"]
    predictions, references = [1, 0, 1, 1, 1], [1, 0, 1, 1, 0]
    metrics = compute_metrics("multirc", predictions, references, groups)
    # positives: TP=3, FP=1, FN=0 -> precision 3/4, recall 1 -> F1 6/7
    assert metrics == {"f1a": pytest.approx(600 / 7), "em": pytest.approx(50.0)}
    with pytest.raises(TaskError, match="needs groups"):
        compute_metrics("multirc", predictions, references)


def test_record_takes_the_max_over_gold_answers_with_squad_normalization():
    metrics = compute_metrics("record", ["The Eiffel Tower!", "Eiffel"], [["Paris", "Eiffel Tower"], "Eiffel Tower"])
    # first: exact after normalization; second: precision 1, recall 1/2 -> F1 2/3, no exact match
    assert metrics == {"f1": pytest.approx(100 * (1 + 2 / 3) / 2), "em": pytest.approx(50.0)}


def test_classification_accepts_label_names_and_words_and_counts_anything_else_wrong():
    metrics = compute_metrics("sst2", ["positive", "Negative", "banana", np.int64(1)], [1, 0, 0, 1])
    assert metrics == {"accuracy": pytest.approx(75.0)}
    assert compute_metrics("rte", ["yes", "no"], [0, 1]) == {"accuracy": 100.0}  # label words: yes=entailment
    assert compute_metrics("mrpc", [2, 5], [1, 1])["f1"] == 0.0  # out-of-range indices are wrong, not errors


def test_glue_average_is_the_mean_of_main_scores():
    scores = {"cola": {"mcc": 50.0}, "MRPC": {"f1": 90.0, "accuracy": 80.0}, "STS-B": {"pearson": 88.0, "spearman": 86.0},
              "sst2": {"accuracy": 94.0, "loss": 0.2}}
    assert glue_average(scores) == pytest.approx((50 + 85 + 87 + 94) / 4)


@pytest.mark.parametrize("call,message", [
    (lambda: compute_metrics("sst2", [1, 0], [1]), "2 predictions but 1 references"),
    (lambda: compute_metrics("sst2", [], []), "no predictions"),
    (lambda: compute_metrics("sst2", [1], ["maybe"]), "reference is not a sst2 class"),
    (lambda: compute_metrics("stsb", [1.0, 2.0], [1.0, "x"]), "not a finite number"),
    (lambda: compute_metrics("multirc", [1], [1], ["a", "b"]), "2 groups for 1 predictions"),
    (lambda: main_score("mrpc", {"accuracy": 80.0}), r"lack the official \['f1'\]"),
    (lambda: glue_average({}), "at least one task"),
    (lambda: glue_average({"sst3": {"accuracy": 1.0}}), "unknown task"),
])
def test_metric_errors_are_task_errors(call, message):
    with pytest.raises(TaskError, match=message):
        call()
