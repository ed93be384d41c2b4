# The best recipe on the slice protocol (docs/RESULTS.md): ECAPA-TDNN, stats pooling, speed
# perturbation, cosine schedule, both whitenings side by side, whole utterances.
# python train.py recipes/best_slice.py, then python evaluate.py ... --as_norm 50
train_feat_dir = 'runs/heldout_slice/train'  # tools/split_heldout.py --every 8
log_dir = 'runs/best_slice'                  # checkpoints
backbone = 'ecapa'                           # ECAPA-TDNN, 256 channels
pooling = 'stats'                            # mean and standard deviation over frames
speed_perturb = True                         # speeds 0.9 and 1.1 as new speakers (3x classes)
speed_factors = '0.9,1.1'                    # the speeds of the copies
lr_schedule = 'cosine'                       # cosine decay over the run
n_epochs = 32                                # 32 epochs
batch_size = 32                              # twice the steps of batch 64
val_ratio = 2                                # 2 % of the files for validation, 8 % more to train
lr = 0.05                                    # half the tutorial's learning rate
whiten = True                                # then fit the whitening (and the AS-norm cohort)
whiten_layer = 'both'                        # pooled statistics (+ LDA) and d-vector, side by side
whole_utterance = True                       # embed each utterance whole, in one pass
