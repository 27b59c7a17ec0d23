"""Faces: find them (``detect``), align them to the models' 512-px frame (``align``), restore
them there and paste them back so nothing else in the photo changes (``paste``)."""

from photofix.methods.faces.align import FACE_SIZE, FFHQ_TEMPLATE_512, crop_face, face_transform
from photofix.methods.faces.detect import CascadeDetector, Face, FaceDetector, YuNetDetector, detect_faces
from photofix.methods.faces.paste import FaceRestoreFn, PastedFaces, restore_faces

__all__ = ["FACE_SIZE", "FFHQ_TEMPLATE_512", "CascadeDetector", "Face", "FaceDetector", "FaceRestoreFn", "PastedFaces",
           "YuNetDetector", "crop_face", "detect_faces", "face_transform", "restore_faces"]
