# real_model.py (the shipped real-speech model's recipe: ECAPA-TDNN on the full DB's 200 training
# speakers plus 250 synthetic espeak-ng voices) at the tutorial's own budget: 16 epochs of the
# 450 speakers take about the CPU time of the tutorial recipe's 30 epochs on the 200 (about two
# CPU hours on a 2-core x86 CPU, one thread). The cosine schedule runs over all 16 epochs, so an
# interrupted run continues with --resume true and ends where an unbroken one would. The
# synthetic voices are made at the tutorial DB's speech level, as every recording is heard
# (dvector.features.at_db_level): at their synthesised level, 20 dB above the people's, the
# model could tell them apart by loudness.
# python tools/split_heldout.py --db_dir data/tutorial_db --dest runs/heldout_full
# python tools/make_demo_db.py --out_dir runs/syn250_db --n_train_speakers 250 --n_utts 40 --n_test_speakers 1 --seed 2027 --speech_level -42
# OMP_NUM_THREADS=1 python train.py recipes/real_model_long.py [--resume true]
train_feat_dir = 'runs/heldout_full/train,runs/syn250_db/feat_logfbank_nfilt40/train'  # 200 + 250
log_dir = 'runs/real_model_long'             # checkpoints
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
