# The slice's best recipe (best_slice.py) on the full DB's 200 training speakers, 7 epochs (the
# CPU time of the tutorial recipe's 8 epochs there): docs/RESULTS.md section 8b compares it with
# the tutorial's. The shipped real-speech model adds synthetic voices to it (real_model.py).
# python tools/split_heldout.py --db_dir data/tutorial_db --dest runs/heldout_full
# python train.py recipes/full_ecapa.py, then python evaluate.py ... --as_norm 50
train_feat_dir = 'runs/heldout_full/train'   # 200 speakers x 100 utterances
log_dir = 'runs/full_ecapa'                  # checkpoints
backbone = 'ecapa'                           # ECAPA-TDNN, 256 channels
pooling = 'stats'                            # mean and standard deviation over frames
speed_perturb = True                         # speeds 0.9 and 1.1 as new speakers (3x classes)
speed_factors = '0.9,1.1'                    # the speeds of the copies
lr_schedule = 'cosine'                       # cosine decay over the run
n_epochs = 7                                 # 7 epochs (about 25 CPU minutes on 2 cores)
batch_size = 32                              # twice the steps of batch 64
val_ratio = 2                                # 2 % of the files for validation
lr = 0.05                                    # half the tutorial's learning rate
whiten = True                                # then fit the whitening (and the AS-norm cohort)
whiten_layer = 'both'                        # pooled statistics (+ LDA) and d-vector, side by side
whole_utterance = True                       # embed each utterance whole, in one pass
