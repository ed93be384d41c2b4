# recipes/ecapa_stats_cosine.py embedding whole utterances, with batch 32 and 2 % validation
# files; score with AS-norm (python evaluate.py --as_norm 50). See docs/RESULTS.md.
# python train.py recipes/ecapa_whole_utterance.py
train_feat_dir = 'runs/heldout_slice/train'  # tools/split_heldout.py --every 8
log_dir = 'runs/ecapa_whole_utterance'       # checkpoints
backbone = 'ecapa'                           # ECAPA-TDNN, 256 channels
pooling = 'stats'                            # mean and standard deviation over frames
speed_perturb = True                         # speeds 0.9 and 1.1 as new speakers (3x classes)
speed_factors = '0.9,1.1'                    # the speeds of the copies
lr_schedule = 'cosine'                       # cosine decay over the run
n_epochs = 32                                # 32 epochs
batch_size = 32                              # twice the steps of batch 64
val_ratio = 2                                # 2 % of the files for validation, 8 % more to train
lr = 0.1                                     # the tutorial's learning rate
whiten = True                                # then fit d-vector whitening (and the cohort)
whole_utterance = True                       # embed each utterance whole, in one pass
