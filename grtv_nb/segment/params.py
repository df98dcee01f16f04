"""The one table of tuned numbers of the classical segmentation methods (:data:`PARAMS`).

Every HU threshold, size (mm, cm2, cc) and margin that a method in :mod:`grtv_nb.segment` was tuned
with lives here, with one line saying what it is, so the numbers can be reviewed (and, for an
experiment, overridden with ``dataclasses.replace(PARAMS, ...)`` and passed nowhere else: the
methods read :data:`PARAMS`). Units are in each name: ``_hu`` Hounsfield units, ``_mm``
millimetres, ``_cm2`` square centimetres, ``_cc`` cubic centimetres, ``_frac`` a fraction.
Directions are grtv_nb's canonical frame (x to the patient's left, y posterior, z superior).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SegmentParams:
    """Tuned numbers of the classical organ methods (see the module docstring for units)."""

    # ---- working grid and input checks (_common)
    work_spacing_xy_mm: float = 2.0  # in-plane spacing of the working grid of the coarse steps
    work_spacing_z_mm: float = 2.0  # through-plane spacing of the working grid
    max_oblique_deg: float = 30.0  # largest angle between image and patient axes still segmented
    min_cc: tuple = (  # smallest volume of a found organ; anything smaller is "not found"
        ("body", 50.0), ("llung", 5.0), ("rlung", 5.0), ("spinal_cord", 1.0), ("liver", 20.0),
        ("lkidney", 5.0), ("rkidney", 5.0), ("stomach", 5.0),
    )

    # ---- image noise (_common.noise_sd, denoise_size; used by spine.py)
    noise_slices: int = 12  # noise is estimated on this many evenly spaced slices (plenty of soft-tissue pixels)
    noise_soft_hu: tuple = (-150.0, 150.0)  # ... in soft tissue: the 5 x 5 mean within this range (fat to
    #                                       enhanced organ), eroded by 2 pixels (away from bone and air edges)
    noise_target_hu: float = 30.0  # the spinal canal's thresholds are applied to slices smoothed down to
    #                              this noise (a median filter sized for that gain on white noise, see
    #                              _common.denoise_size; none where the noise is already lower): the
    #                              canal's content (CSF and cord, 0-30 HU) lies 60-90 HU below
    #                              canal_soft_hu's upper end, 2 sd at 30 HU (2 % of its pixels above it),
    #                              1.3 sd at the 46 HU of the example CT with 40 HU noise added (10 %: the
    #                              canal broken into pieces, cord coverage 0.948; a 3 x 3 median: 0.970).
    #                              Estimated noise: example CT 19 HU, real planning CTs 4-16 HU: unchanged
    noise_median_max_px: int = 7  # largest median filter (pixels): noise up to 5.6 times the target
    #                             (168 HU) is brought down to it; a 7 x 7 median still keeps the canal (radius
    #                             4-12 mm) on 2-3 mm pixels

    # ---- body (body.py)
    body_hu: float = -500.0  # tissue threshold: fat, soft tissue and bone are above, air and lung below
    body_open_mm: float = 6.0  # axial opening that detaches couch shells, masks, cables
    body_recon_mm: float = 8.0  # distance within which the opening is undone
    body_min_cc: float = 20.0  # smallest trunk (largest tissue region) that is a patient
    body_outside_air_hu: float = -900.0  # border-touching background above this mean may be inside
    body_inside_rim_frac: float = 0.75  # ... when the body makes this much of its rim
    body_inside_between_frac: float = 0.5  # ... and, if it reaches across the image, lies on both sides of this
    #                                       much of it, front and back or left and right (the CERR hemithorax
    #                                       crops' lung reaching from the image's top to its bottom: 0.25 / 1;
    #                                       the couch gap behind the back of a body cut on both sides: 0 / 0)
    limb_min_cm2: float = 10.0  # arm lying against the trunk: least area per slice
    limb_max_frac: float = 0.3  # ... most area, as a fraction of the trunk's
    limb_bone_hu: float = 300.0  # bone of a limb (humerus, radius, ulna)
    limb_bone_cm2: float = 0.5  # ... least bone area per slice
    limb_lateral_frac: float = 0.8  # ... centre beyond this fraction of the trunk's half-width
    limb_min_cc: float = 20.0  # limb apart from the trunk: least volume
    limb_bone_cc: float = 2.0  # ... least bone volume
    limb_bone_frac: float = 0.02  # ... least bone fraction of the piece
    limb_median_hu: tuple = (-120.0, 100.0)  # ... range of its median HU (fat to muscle)
    trunk_min_cm2: float = 250.0  # a trunk slice (not head, neck or limb): least body area
    trunk_min_width_mm: float = 200.0  # ... and least left-right width
    trunk_cut_frac: float = 0.5  # ... times this where the body is cut by the image's left or right edge

    # ---- lungs (lungs.py)
    air_hu: float = -400.0  # internal air (lung, airway, gas) is below
    airway_hu: float = -900.0  # airway lumen (pure air) is below
    trachea_cm2: tuple = (0.5, 8.0)  # area range of the trachea's cross-section
    trachea_midline_mm: float = 50.0  # trachea centre within this of the midline
    trachea_max_mm: float = 45.0  # largest in-plane extent of the trachea's cross-section
    trachea_stop_cm2: float = 30.0  # stop looking for the trachea below a slice with this much air
    airway_grow_mm: float = 6.0  # a bronchus continues within this of the airway above
    airway_max_cm2: float = 12.0  # airway tracking stops where the region exceeds this ...
    airway_max_growth: float = 2.5  # ... or grows by this factor (leak into the lung)
    airway_margin_mm: float = 2.0  # margin of the removed airway
    gas_hu: float = -950.0  # pure gas (bowel, stomach): 3x3x3 mean below this
    gas_min_cc: float = 5.0  # ... in blobs of at least this volume
    lung_min_cc: float = 10.0  # smallest lung component
    lung_piece_min_cc: float = 1.0  # a smaller piece of lung base cut off by the image's top slice (the
    #                                 costophrenic ring cut apart; likelier on thick slices) joins a lung ...
    lung_piece_gap_mm: float = 12.0  # ... within this of it on the top slice (example CT, 5 mm slabs: the
    #                                 left lung's anterolateral recess, 8.6 cc, 6.7 mm from its base; gas
    #                                 partial volume in the stomach's fundus, cut to x > 40 mm: 17.5 mm)
    lung_piece_min_mm: float = 10.0  # ... reaching at least this far down from the top slice (a recess runs
    #                                 down along the chest wall: 30 mm; that gas partial volume: 3 mm, one slice)
    lung_median_hu: tuple = (-920.0, -600.0)  # median HU range of aerated lung
    lung_large_cc: float = 150.0  # smaller components must reach the top slice (a lung base)
    lung_front_frac: float = 0.3  # lungs are not centred in this anterior fraction of the body
    lung_split_max_mm: float = 12.0  # erosion depth tried to split lungs touching at the junction
    lung_split_min_frac: float = 0.1  # each split part holds at least this fraction
    lung_side_rows_frac: float = 0.6  # rows putting the skin closer on one side name a single lung
    lung_close_mm: float = 2.0  # closing that takes in the vessels
    subdiaphragm_frac: float = 0.5  # below the lungs' largest slice, a piece of air is lung only
    #                                 when this fraction of it lies under the lung of the slice above
    lung_hole_cm2: float = 10.0  # ... holes of that lung up to this size (vessels, a small tumour) count
    lung_base_area_frac: float = 0.5  # the lung bases' highest point: where the area falls below
    #                                   this fraction of the largest slice area, going down

    # ---- spinal canal (spine.py)
    spine_bone_hu: float = 130.0  # bone enclosing the canal
    enclose_mm: float = 25.0  # bone looked for within this in 8 directions
    canal_soft_hu: tuple = (-100.0, 90.0)  # canal content (CSF, cord, epidural fat)
    canal_area_mm2: tuple = (50.0, 450.0)  # canal cross-section (radius 4-12 mm)
    canal_median_hu: tuple = (-60.0, 50.0)  # median HU of a candidate
    canal_posterior_frac: float = 0.35  # candidate lies behind this fraction of the body's depth
    canal_midline_mm: float = 40.0  # candidate within this of the body's left-right centre
    canal_wide_fov_mm: float = 300.0  # ... also where the image cuts the body, if it is this wide
    canal_edge_strip_mm: float = 70.0  # strip along an image edge that cuts the body, completed by its
    #                                    mirror image to look for a canal the edge cuts (symmetry box
    #                                    40 mm + enclosure reach 25 mm)
    canal_edge_depth_frac: float = 0.5  # ... where the body on the edge column spans this fraction of its
    #                                   AP extent (the example CT cut through the spine: 0.8-1)
    canal_edge_width_frac: float = 0.6  # ... the completed canal is at least this wide for its depth
    canal_edge_min_mm2: float = 80.0  # ... and this large (the edge 4 mm or more past the canal's middle,
    #                                   a sliver of it in the image: 54-63 mm2, where the edge cuts near its
    #                                   middle: 63-300 mm2, median 110-150)
    vbody_min_hu: float = 110.0  # mean HU of the vertebral body just anterior of the canal
    canal_sym_box_mm: tuple = (40.0, -40.0, 30.0)  # symmetry boxes: lateral extent, y range from the canal
    canal_sym_frac: float = 0.35  # bone on the poorer side at least this fraction of the other side's
    canal_step_mm: float = 10.0  # largest move of the canal centre per 10 mm along z
    canal_min_slices: int = 3  # least slices with a closed bony ring
    canal_gap_mm: float = 35.0  # largest z gap between two ring slices of one track: one vertebral
    #                            level (body + disc, 25-35 mm) may show no closed ring at all on 5 mm
    #                            slabs or in noise (25 mm cut the lumbar or the upper thoracic canal off)
    canal_top_gap_mm: float = 70.0  # where the image cuts the body on its left or right edge, the track
    #                                must reach within this (two vertebral levels) of the highest cut
    #                                slice: the canal runs on up through the trunk and neck (example CT
    #                                cut at x > 0 / x < 0 mm, through the canal: a chain of hip-bone
    #                                marrow cavities ended 230 mm below the top)
    canal_extend_mm: float = 10.0  # the track is not extended beyond its ends by more than this
    canal_delta_hu: float = 90.0  # image-grid refinement: region below content + this
    canal_rim_hu: float = 250.0  # partial-volume rim of the canal wall is below this

    # ---- pelvis landmark (landmarks.py)
    pelvis_bone_hu: float = 200.0  # iliac bone
    pelvis_wing_cm2: float = 4.0  # least cross-section of an iliac wing on one slice
    pelvis_lateral_mm: tuple = (50.0, 170.0)  # distance of a wing's centre from the midline
    pelvis_min_slices_mm: float = 20.0  # least craniocaudal run of slices with two wings
    pelvis_crest_hu: float = 150.0  # the thin upper iliac wing, followed up to the crests
    pelvis_margin_mm: float = 20.0  # abdominal organs are looked for down to this below the crests

    # ---- abdomen (abdomen.py)
    dome_margin_mm: float = 30.0  # abdominal slices start this far above the lung bases
    airway_below_mm: float = 30.0  # ... and this far below the trachea's lowest slice
    abdomen_min_mm: float = 13.4  # least craniocaudal extent of abdominal slices: the thinnest slab that
    #                             can hold 20 % of an abdominal organ searched for (the slab through
    #                             the middle of an ellipsoid of length L holds 1.5 u - 0.5 u^3 of it,
    #                             u = thickness / L: 20 % at u = 0.134; the shortest organ, a kidney,
    #                             is 100-120 mm long: 13.4-16 mm). 20 mm refused 15 mm of the example CT
    #                             holding 20.1 % of its left kidney (found with 13.4: Dice 0.894)
    abdomen_canal_frac: float = 0.5  # least fraction of the abdominal slices within the canal's z range
    #                                 (left/right landmark). Example CT: whole, crops in z, 5 mm slabs,
    #                                 noise 0.97-1; cut 20-40 mm left or right of the midline 0.70 (the
    #                                 pelvis, undetected on a cut image, counts as abdomen); edge through
    #                                 or past the spine (x < 0, x < -20, x > 0): 0.32-0.40, where an iliac
    #                                 wing's ring was tracked as the canal and organs were drawn with Dice 0
    cage_cut_depth_frac: float = 0.5  # the image's edge on the patient's left cuts the trunk (the liver's rib-cage hull
    #                                   is completed by mirroring about the midline) where the body on the
    #                                   edge column spans this fraction of its AP extent (cut 20 mm past
    #                                   the midline: 0.82-1; the example CT's flank grazing its edge in the
    #                                   abdomen: <= 0.2; its hips, cut by the edge below the organs: 0.3-0.7)
    side_cut_frac: float = 0.8  # no spinal canal in the image: it holds one side of the trunk only (the side
    #                           whose edge does not cut it) where one edge cuts the trunk (the body on the edge
    #                           column spans cage_cut_depth_frac of its AP extent) on at least this fraction
    #                           of the slices with a body and the other edge on none (example CT cut 20-40 mm
    #                           past the canal, x < -20, x > 20: 1 and 0)
    side_midline_mm: float = 10.0  # ... the midline is then at least this far beyond that edge (the canal,
    #                              12-20 mm wide, is found where the edge is up to 4 mm past its middle)
    side_halfwidth_frac: float = 0.65  # ... and no nearer the lateral skin than this fraction of the body's
    #                                  anterior-posterior extent (the trunk's half-width: the abdomen is
    #                                  1.2-1.5 times as wide as deep in adults; example CT 1.3)
    canal_back_frac: float = 0.3  # ... and the canal's y this fraction of the body's anterior-posterior extent
    #                             in front of its back (example CT, abdomen: 0.25-0.34, also on x < -20, x > 20)
    cage_bone_hu: float = 200.0  # rib (cortex and marrow) of the rib cage's hull, on slices up to ...
    cage_slab_mm: float = 3.0  # ... this thick; on a thicker slab a rib fills a fraction cage_slab_mm /
    #                          thickness of it, so the threshold falls towards ...
    cage_soft_hu: float = 40.0  # ... the soft tissue around the rib in that proportion (example CT on
    #                          5 mm slabs at 200 HU: the hull lost the anterior ribs, 127-262 voxels of
    #                          liver per slice outside it against 0-44 on its 3 mm slices; liver Dice
    #                          on 5 mm slabs 0.860 / 0.851 / 0.835 with 0 / 40 / 80 HU here)
    liver_smooth_mm: float = 9.0  # the liver's HU mean filter spans at most this along each axis (as
    #                             kidney_smooth_mm: 3 voxels on 2-3 mm grids, 1 along z on 4-5 mm slabs)
    liver_open_mm: float = 8.0  # opening that cuts bridges to the liver's neighbours
    liver_spine_mm: float = 35.0  # radius round the vertebral body left out (crura, aorta, IVC)
    liver_seed_top_mm: float = 40.0  # without lung bases in the image: the liver's seed zone is the
    #                                  abdominal slices within this of the highest one (the lung-base
    #                                  band with lungs is 70 mm; the dome's right half is liver)
    liver_hu: tuple = (0.0, 250.0)  # range of the liver's histogram mode (plain to portal venous)
    liver_cc: tuple = (100.0, 5000.0)  # plausible liver volume
    liver_paraspinal_mm: float = 50.0  # behind the canal and within this of the midline: the back muscles
    liver_paraspinal_frac: float = 0.02  # a liver candidate with more of its voxels there joined them (example
    #                                  CT: full 0, crops 0; cut at z 250-360, 67 mm below the dome: 0.18, Dice 0.20)
    liver_body_frac: float = 0.4  # the liver holds less than this fraction of the trunk
    liver_grow_mm: float = 10.0  # growth into the wider window
    kidney_windows: tuple = ((-15.0, 42.0), (120.0, 400.0))  # kidney HU: plain, contrast
    kidney_liver_rim_mm: float = 5.0  # rim of the liver that stays open to the kidneys
    kidney_cc: tuple = (40.0, 450.0)  # plausible kidney volume
    kidney_cut_cc: float = 20.0  # least volume of a kidney candidate cut by the image's first or last slice
    kidney_min_width_mm: float = 30.0  # least in-plane extent (both directions) of a kidney candidate
    #                                  (a kidney is 50-70 mm across; a strip of psoas or crus is narrower)
    kidney_midline_mm: tuple = (35.0, 120.0)  # distance of the kidney search zone from the midline
    kidney_lateral_edge_frac: float = 0.75  # a candidate touching the zone's lateral limit on more
    #                                      than this fraction of its slices is spleen or liver (the
    #                                      spleen alone: 0.9-0.96; a kidney merged with it on 5 mm slabs: 0.55)
    kidney_front_edge_frac: float = 0.5  # a candidate touching the zone's front limit (65 mm anterior of the
    #                                  canal) on more than this fraction of its slices is bowel (example CT,
    #                                  pieces split off the left kidney: small-bowel loops 0.87-0.97;
    #                                  kidneys 0-0.15)
    kidney_smooth_mm: float = 9.0  # the kidney's HU mean filter spans at most this along each axis (an odd
    #                              number of voxels: 3 on 2-3 mm grids; 1 along z on 4-5 mm slabs, where 3
    #                              slabs (12-15 mm) blurred the spleen into the left kidney's upper pole)
    kidney_canal_mm: float = 30.0  # the search zone follows the canal's y slice by slice, averaged over this
    #                              along z (the lumbar lordosis moves it 30 mm on the example CT; one
    #                              median for the image moved the zone by 7 mm with the image's z range);
    #                              so does the stomach's region (its back, 20 mm in front of the canal;
    #                              with the median, 14 mm apart between the example CT and its crop at
    #                              z >= 370: stomach Dice 0.627 -> 0.654 on the whole CT)
    kidney_peak_sep_mm: float = 8.0  # least distance between the seeds (distance-map maxima) of the pieces
    #                                a kidney candidate is split into
    kidney_neck_frac: float = 0.5  # two adjacent pieces are one organ when the neck between them (the
    #                              largest distance to the candidate's edge on their border) is at least
    #                              this fraction of the thinner piece's (example CT: within the kidney
    #                              0.6-1.0; kidney to a small-bowel loop at its lower pole 0.35; to psoas
    #                              0.33; results alike for 0.4-0.6)
    kidney_psoas_hu: float = 10.0  # plain window: a piece of a kidney candidate against the zone's medial
    #                              limit (the vertebral body's side) whose mean HU is this much above the
    #                              candidate's median is psoas (muscle 40-60 HU, unenhanced kidney 30-35;
    #                              example CT, right kidney on z crops: alike for 6-10 HU, 14 kept one
    #                              psoas piece, 18 all of them; no kidney piece split off at 6)
    kidney_psoas_window_hu: float = 100.0  # ... in the windows starting below this (contrast windows hold no muscle)
    stomach_gas_hu: float = -600.0  # stomach gas pocket is below
    stomach_gas_cc: float = 2.0  # least gas pocket
    stomach_cage_depth_q: float = 0.25  # without lung bases: on the slices whose cage window the image's
    #                                   end cuts, the stomach's cage is completed by the body deeper than
    #                                   this quantile of the cage edge's depth under the skin on the other
    #                                   slices (the abdominal wall and the ribs; example CT: 22-30 mm; the
    #                                   stomach lies 39 mm or more deep, the wall's muscle 20-25 mm)
    stomach_bed_mm: float = 55.0  # without lung bases: the fluid route needs the image's top this far
    #                             above the left kidney's lowest slice (half a kidney's 110 mm length: the
    #                             top reaches the kidney's upper half, the stomach bed)
    stomach_tube_ratio: float = 4.0  # a soft-tissue piece of the fluid route longer along z than this times
    #                               its mean diameter is a tube (the aorta with the bowel beside it: example CT
    #                               cut 20 mm left of the midline, 156 mm long, 21 mm across: 7.4), no stomach
    #                               (its pieces: 0.9-2)
    stomach_seed_cm2: float = 7.0  # without lung bases: the fluid route's first piece is cut by the image's
    #                              top over at least this (a loop of small bowel is under 30 mm across:
    #                              example CT 4 cm2 on a crop cut through the jejunum; the stomach's body 10)


#: The parameters the methods use.
PARAMS = SegmentParams()


def min_cc(organ: str) -> float:
    """Smallest plausible volume (cc) of a found ``organ``."""
    return dict(PARAMS.min_cc)[organ]
