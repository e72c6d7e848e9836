"""Post-processing, panoptic quality, COCO AP and COCO panoptic files."""
