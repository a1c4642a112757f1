"""Length-grouped embedding: the same embeddings, loss and gradients as sentence-transformers' forwards."""

import pytest
import torch

from tiny_training import one_thread, write_parallel_qa  # noqa: F401 - one_thread is an autouse fixture
from xlir.models import load_encoder
from xlir.training import TrainConfig, prepare_training_data, train
from xlir.training.losses import LengthGroupedMNRLoss, embed_length_grouped, length_groups, merged_columns_flops_view


def features(model, columns):
    return [model.preprocess(texts) for texts in columns]


COLUMNS = [
    ["query: short?", "query: a somewhat longer question about things?", "query: mid length one?"],
    ["passage: a long answer sentence " * 6, "passage: tiny.", "passage: a medium answer here."],
    ["passage: negative.", "passage: a long negative sentence " * 5, "passage: neg three is here."],
]


@pytest.mark.parametrize("groups", [2, 3, 9, 50])
def test_grouped_embeddings_equal_sentence_transformers_forwards(groups):
    from sentence_transformers.base.losses.merged_forward import embed_columns

    model = load_encoder("tiny", max_seq_length=32)
    model.eval()
    feats = features(model, COLUMNS)
    fresh = lambda: [dict(f) for f in feats]  # noqa: E731 - a forward writes its outputs into the dicts
    with torch.no_grad():
        ours = embed_length_grouped(model, fresh(), groups)
        theirs = embed_columns(model, fresh())
    assert [t.shape for t in ours] == [t.shape for t in theirs]
    for a, b in zip(ours, theirs):
        assert torch.allclose(a, b, atol=1e-5)
    chunks, order = length_groups(feats, groups)
    assert sorted(order.tolist()) == list(range(9)) and len(chunks) == min(groups, 9)
    widths = [c["input_ids"].shape[1] for c in chunks]
    assert widths == sorted(widths) and widths[-1] == max(f["input_ids"].shape[1] for f in feats)
    padded = lambda view: sum(c["input_ids"].numel() for c in view)  # noqa: E731
    assert padded(merged_columns_flops_view(feats, groups)) < padded(merged_columns_flops_view(feats))


def test_the_loss_and_its_gradients_match_and_training_uses_it(tmp_path):
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    model = load_encoder("tiny", max_seq_length=32)
    feats = features(model, COLUMNS)
    grads = []
    for loss_fn in (MultipleNegativesRankingLoss(model, scale=50), LengthGroupedMNRLoss(model, scale=50, groups=3)):
        model.zero_grad()
        loss = loss_fn([dict(f) for f in feats], None)
        loss.backward()
        grads.append((float(loss), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (la, ga), (lb, gb) = grads
    assert la == pytest.approx(lb, rel=1e-5) and ga.keys() == gb.keys()
    assert all(torch.allclose(ga[n], gb[n], atol=1e-5, rtol=1e-4) for n in ga)

    data = write_parallel_qa(tmp_path / "qa.jsonl", ids=20)
    cfg = TrainConfig(base_model="tiny", train_datasets=[data], steps=2, batch_size=4, max_seq_length=32,
                      validation_fraction=0, length_groups=3, align_weight=0.0, output_dir=tmp_path / "r")
    from xlir.training.trainer import build_trainer

    trainer, _ = build_trainer(cfg, prepare_training_data([data]), load_encoder("tiny", max_seq_length=32),
                               checkpoint_dir=tmp_path / "c", save_checkpoints=False)
    assert isinstance(trainer.loss, LengthGroupedMNRLoss) and trainer.loss.groups == 3
    # the trainer's own batches: queries and passages carry different prompts, so they group apart
    from sentence_transformers.base.losses.merged_forward import embed_columns

    feats, _ = trainer.collect_features(dict(next(iter(trainer.get_train_dataloader()))))
    assert len({f["prompt_length"] for f in feats}) == 2
    chunks, places = length_groups(feats, 3)
    assert sorted(places.tolist()) == list(range(12)) and len({c["prompt_length"] for c in chunks}) == 2
    model = trainer.model
    model.eval()
    with torch.no_grad():
        ours = embed_length_grouped(model, [dict(f) for f in feats], 3)
        theirs = embed_columns(model, [dict(f) for f in feats])
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(ours, theirs))
    assert train(cfg, show_progress=False).steps == 2


def test_alignment_term_pulls_towards_the_frozen_base_embedding_of_the_pivot_text(tmp_path):
    import copy

    model = load_encoder("tiny", max_seq_length=32)
    teacher = copy.deepcopy(model)
    pivots = [["query: short?", "query: short?", "query: mid length one?"], COLUMNS[1]]
    loss_fn = LengthGroupedMNRLoss(model, scale=50, groups=3, teacher=teacher, align_weight=2.0)
    assert not any(p is teacher_p for p in loss_fn.parameters() for teacher_p in teacher.parameters())
    model.eval()  # no dropout: the student equals the teacher at the start
    out = loss_fn([dict(f) for f in features(model, COLUMNS + pivots)], None)
    assert set(out) == {"contrastive", "alignment"}
    plain = LengthGroupedMNRLoss(model, scale=50, groups=3)([dict(f) for f in features(model, COLUMNS)], None)
    assert float(out["contrastive"]) == pytest.approx(float(plain), rel=1e-5)
    # row 0 and the passages are their own pivots (distance 0); rows 1 and 2 of the anchors are not
    with torch.no_grad():
        a = model.encode([COLUMNS[0][1], COLUMNS[0][2]], convert_to_tensor=True)
        t = model.encode(["query: short?", "query: mid length one?"], convert_to_tensor=True)
    expected = 2.0 * ((2 - 2 * torch.nn.functional.cosine_similarity(a, t)).sum() / 3) / 2
    assert float(out["alignment"]) == pytest.approx(float(expected), rel=1e-4)
    out["alignment"].backward()  # gradients reach the student only
    assert any(p.grad is not None for p in model.parameters())
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())


def test_pivot_columns_hold_the_english_version_of_each_row(tmp_path):
    data = write_parallel_qa(tmp_path / "qa.jsonl", ids=6)
    table = prepare_training_data([data], validation_fraction=0).train
    frame = table.frame()
    english = frame[(frame.lang_q == "en") & (frame.lang_p == "en")].set_index("parallel_id")
    for i, row in frame.iterrows():
        assert table.anchor_pivot[i] == english.loc[row.parallel_id, "anchor"]
        assert table.positive_pivot[i] == english.loc[row.parallel_id, "positive"]
    assert table.to_dataset(pivot=True).column_names == ["anchor", "positive", "negative", "anchor_pivot",
                                                         "positive_pivot"]


def test_training_with_the_alignment_term_logs_both_parts(tmp_path):
    data = write_parallel_qa(tmp_path / "qa.jsonl", ids=20)
    cfg = TrainConfig(base_model="tiny", train_datasets=[data], steps=3, batch_size=4, max_seq_length=32,
                      validation_fraction=0, align_weight=1.0, output_dir=tmp_path / "r", log_every=1)
    result = train(cfg, show_progress=False)
    import json

    logged = [json.loads(line) for line in (tmp_path / "r" / "train_log.jsonl").read_text().splitlines()]
    parts = [r for r in logged if "alignment" in r]
    assert len(parts) == 3 and all(r["alignment"] > 0 and "contrastive" in r for r in parts)
    assert all(r["loss"] == pytest.approx(r["contrastive"] + r["alignment"], rel=1e-3) for r in parts)
    assert result.steps == 3
    with pytest.raises(ValueError, match="mini_batch_size"):
        TrainConfig(align_weight=1.0, mini_batch_size=4)
