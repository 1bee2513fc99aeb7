"""Models behind one contract (`base.Recommender`): the baselines, word2vec pretraining, RIB
itself (`rib`: the network, `loss`: its full softmax, `train`: the training loop) and its
checkpoints (`checkpoint`: save, load, recommend from raw micro-behaviors)."""
