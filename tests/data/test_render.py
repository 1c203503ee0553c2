"""The camera renderer's occlusion: near things hide far things, never the other way round."""

from __future__ import annotations

import numpy as np
from bevdeploy.data.camera_geometry import ground_pieces, object_pieces
from bevdeploy.data.camera_render import Camera, render
from bevdeploy.data.synth_world import Road
from bevdeploy.data.types import DETECTION_CLASSES

# A camera 1.5 m above the ground looking along +x (camera z forward, x right, y down).
CAM2GLOBAL = np.array([[0.0, 0, 1, 0], [-1, 0, 0, 0], [0, -1, 0, 1.5], [0, 0, 0, 1]])
K = np.array([[400.0, 0, 200], [0, 400, 112], [0, 0, 1]])
PED, CAR, SCENERY = DETECTION_CLASSES.index("pedestrian"), DETECTION_CLASSES.index("car"), -1


def _render(boxes: np.ndarray, cls: np.ndarray, backdrop: np.ndarray | None = None):
    colours = np.full((len(cls), 3), 150, np.uint8)
    pieces = object_pieces(cls, boxes[:, 3:6], colours)
    ground = ground_pieces(Road(np.array([-50.0, 0.0]), 0.0, 0.0), 0.0, 200.0)
    cam = Camera(K, CAM2GLOBAL, (400, 225))
    return render(cam, boxes, pieces, cls >= 0, ground, backdrop=backdrop)


def test_pedestrian_in_front_of_a_long_wall_stays_visible() -> None:
    # The wall's centre (40 m) is nearer than the pedestrian (47 m), who stands in front of it.
    boxes = np.array([[40.0, 20, 5, 30, 10, 10, 0], [45.0, 13, 0.885, 0.73, 0.67, 1.77, 0]])
    cls = np.array([SCENERY, PED])
    image, visible, silhouette = _render(boxes, cls, backdrop=np.array([True, False]))
    assert silhouette[1] > 0 and visible[1] >= 0.9 * silhouette[1]
    _, visible_naive, _ = _render(boxes, cls)  # face-centre order alone gets this wrong
    assert visible_naive[1] < 0.5 * silhouette[1]


def test_near_car_hides_far_car() -> None:
    boxes = np.array([[15.0, 0, 0.865, 4.6, 1.95, 1.73, 0], [30.0, 0.3, 0.865, 4.6, 1.95, 1.73, 0]])
    image, visible, silhouette = _render(boxes, np.array([CAR, CAR]))
    assert visible[0] >= 0.95 * silhouette[0]
    assert visible[1] < 0.3 * silhouette[1]  # almost entirely behind the near one
    assert image.shape == (225, 400, 3) and image.dtype == np.uint8
