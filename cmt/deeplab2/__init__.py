"""DeepLab2 checkpoints read into our models.

`names`: a variable of ours -> its DeepLab2 checkpoint key and the value
conversion (class-channel order, void prior). `checkpoint`: which layout a
DeepLab2 checkpoint has and the plan pairing our variables with its keys
(also the warm start of `model_options.initial_checkpoint`).
`import_checkpoint`: `cmt-import-deeplab2`'s conversion to a checkpoint of
ours, with its mapping report.
"""
