"""Names shared by the model, data pipeline, losses, trainer and evaluator.

Model outputs and ground truth travel as dicts keyed by these constants.
Shapes use B batch, H x W crop, h x w output resolution (stride 4; crops are
4k + 1 so h = (H - 1) / 4 + 1), N cluster centers, K padded ground-truth
masks, C classes without void, M reference points, D pixel-feature channels.

Class indices are contiguous: 0 is void (no object), 1..C the dataset's
classes, so a class-logit index equals a label-map value.
"""

# ---- Model outputs -------------------------------------------------------
# [B, h, w, N] final mask (assignment) logits, Eq. 4 / Eq. 6 before softmax_N.
MASK_LOGITS = 'mask_logits'
# [B, N, C + 1] class logits of each cluster center; index 0 = void.
CLASS_LOGITS = 'class_logits'
# [B, h, w, D] L2-normalised pixel features F.
PIXEL_FEATURES = 'pixel_features'
# [B, h, w, C + 1] auxiliary semantic logits (training only); index 0 = void.
SEMANTIC_LOGITS = 'semantic_logits'
# [B, N, M, 2] reference-mask points (h, w) in [0, 1] (Eq. 10).
REFERENCE_POINTS = 'reference_points'
# Tuple of dicts, one per transformer layer before the output, each holding
# MASK_LOGITS at that layer's own resolution ([B, h_l, w_l, N], the
# assignment logits Z of Eq. 6), CLASS_LOGITS and, when predicted,
# REFERENCE_POINTS. Deep supervision and the Fig. 5 pictures read these.
AUX_OUTPUTS = 'aux_outputs'
# [B, N, h_l, w_l] head-averaged memory-to-pixel attention of the last layer
# (the pixel part of Eq. 3's softmax over HW and N): Fig. 1.
CROSS_ATTENTION = 'cross_attention'
# [B, N, h_l, w_l] the last layer's clustering assignment Z^T = softmax_N(S)^T
# (Eq. 6; with the clustering update only): Fig. 1.
CLUSTER_ASSIGNMENT = 'cluster_assignment'

# ---- Ground truth (from cmt.data to the losses) --------------------------
# [B, H, W, 3] float32 in [0, 255], padded with the dataset mean.
IMAGE = 'image'
# [B, H, W] int32 contiguous class, 0 = void (also on padding).
GT_SEMANTIC = 'gt_semantic'
# [B, H, W] int32 semantic * label_divisor + instance.
GT_PANOPTIC = 'gt_panoptic'
# [B, H, W] int32 index into the K padded masks; -1 on void, crowd, padding.
GT_MASK_ID = 'gt_mask_id'
# [B, K] int32 contiguous class of each padded mask (0 for padding).
GT_MASK_CLASS = 'gt_mask_class'
# [B, K] float32 1 for a real mask, 0 for padding.
GT_MASK_VALID = 'gt_mask_valid'
# [B, K] float32 1 for a thing mask.
GT_MASK_IS_THING = 'gt_mask_is_thing'
# [B, H, W] float32 0 on void, crowd and padding; 1 elsewhere.
GT_PIXEL_WEIGHT = 'gt_pixel_weight'
# [B, H, W] float32 1 on crowd regions.
GT_CROWD = 'gt_crowd'
# [B, 2] int32 image height and width before padding (after resizing).
IMAGE_SIZE = 'image_size'
# [B, 2] int32 image height and width as stored, before any resizing; COCO
# panoptic files are written at this size.
ORIGINAL_IMAGE_SIZE = 'original_image_size'
# [B] string, the image file name without extension (COCO image id).
IMAGE_NAME = 'image_name'
# Evaluation: what the device gets besides IMAGE and IMAGE_SIZE (numbers
# only, static shapes; `cmt.data.eval_inputs`). [B] int32 position of the
# image in the evaluation set, the key that joins it to its host-only data;
# -1 on the padding of the last batch.
EVAL_INDEX = 'eval_index'
# [B] bool, False on the padding of the last batch.
IMAGE_VALID = 'image_valid'

# ---- Post-processed predictions -----------------------------------------
# [B, H, W] int32 semantic * label_divisor + instance; 0 = void.
PRED_PANOPTIC = 'pred_panoptic'
PRED_SEMANTIC = 'pred_semantic'
PRED_INSTANCE = 'pred_instance'
# [B, N] int32 per cluster center: the PRED_PANOPTIC label of the segment it
# produced, 0 if none (a static-shape segment list, e.g. for export).
PRED_SEGMENT_LABELS = 'pred_segment_labels'
# [B, N] float32 per cluster center: its ranking score (class confidence x
# mask score), 0 where PRED_SEGMENT_LABELS is 0.
PRED_SEGMENT_SCORES = 'pred_segment_scores'

# ---- Losses (named, each summarised by the trainer) ----------------------
LOSS_PQ_STYLE = 'pq_style_loss'
LOSS_MASK_ID = 'mask_id_cross_entropy_loss'
LOSS_INSTANCE_DISCRIMINATION = 'instance_discrimination_loss'
LOSS_SEMANTIC = 'semantic_loss'
LOSS_MASK_APPROXIMATION = 'mask_approximation_loss'
LOSS_TOTAL = 'total_loss'
