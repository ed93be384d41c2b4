# real_model_long.py with band limiting: a fifth of the training crops lose their bands above a
# telephone's cut-off (3.4-4.4 kHz), as a recording made at 8 kHz does, so such recordings keep
# their voice (issue 28's narrowband gap). Another seed, so the two runs also show the spread.
# Data as in real_model_long.py; about two CPU hours on a 2-core x86 CPU, one thread.
# OMP_NUM_THREADS=1 python train.py recipes/real_model_band.py [--resume true]
train_feat_dir = 'runs/heldout_full/train,runs/syn250_db/feat_logfbank_nfilt40/train'  # 200 + 250
log_dir = 'runs/real_model_band'             # checkpoints
backbone = 'ecapa'                           # ECAPA-TDNN, 256 channels
pooling = 'stats'                            # mean and standard deviation over frames
speed_perturb = True                         # speeds 0.9 and 1.1 as new speakers (3x classes)
speed_factors = '0.9,1.1'                    # the speeds of the copies
lr_schedule = 'cosine'                       # cosine decay over the run
n_epochs = 16                                # the tutorial's CPU budget
batch_size = 32                              # twice the steps of batch 64
val_ratio = 2                                # 2 % of the files for validation
lr = 0.05                                    # half the tutorial's learning rate
whiten = True                                # then fit the whitening (and the AS-norm cohort)
whiten_layer = 'both'                        # pooled statistics (+ LDA) and d-vector, side by side
whole_utterance = True                       # embed each utterance whole, in one pass
band_limit = 0.2                             # a fifth of the crops cut to a telephone band
seed = 2                                     # another seed than real_model_long.py's
