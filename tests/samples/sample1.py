# Sample 1 of the pyGRTV API reference v1.9.4J (section 4.1), verbatim apart from the data paths,
# which the test replaces ("c:/testdata/", "d:/dltest/tmp/mesh") before running it.
import numpy as np
from time import sleep
import zmq
import os, sys, glob, shutil
import psutil
import numpy as np
import re, gc
import cv2
sys.path.append("C:/Program Files/GrowthRTV/pyGRTV")
from grtv import *

if __name__ == "__main__":

    # GRTV インスタンス生成
    grtv = pyGRTV()
    print(grtv.pyIni)
    print(grtv.userPyCache)

    # DICOM-RT 読み込み
    rtDir = "c:/testdata/"
    ret = grtv.readRTDir(rtDir)

    # 画像 DICOM タグ取得サンプル
    dcmTagsMap = {}
    ret = grtv.getImageDcmTags(dcmTagsMap)
    print(dcmTagsMap)

    # 現在の画像のサイズ情報取得
    paramMap = {}
    ret = grtv.getImageParam(grtv.GRTV_PARAM_IMAGE_SIZE, paramMap)
    print(ret)

    #現在の画像のボクセルサイズ取得
    ret = grtv.getImageParam(grtv.GRTV_PARAM_IMAGE_RES, paramMap)
    print(paramMap)

    # CT RAW ボリューム取得サンプルコード
    ret, img_short = grtv.readGRTVRaw(grtv.GRTV_DATA_TYPE_IMAGE)

    # Dose ボリューム取得サンプルコード
    ret, dose_short = grtv.readGRTVRaw(grtv.GRTV_DATA_TYPE_DOSE)

    # ROI リスト取得
    roiList = []
    ret = grtv.getROIList(roiList)
    print(roiList)

    # 中間スライス表示サンプルコード
    imgShape = img_short.shape
    slicePos = int(imgShape[0] / 2)
    slice = img_short[slicePos, :, :]
    gray = grtv.getSliceByLut(slice, wl=0, ww=2000)
    cv2.imshow("slice", gray)
    cv2.waitKey(0)

    ### roi Mesh Export サンプル
    if False:
        meshType = grtv.GRTV_MESH_TYPE_PLY
        extMap = {grtv.GRTV_MESH_TYPE_STL:".stl", grtv.GRTV_MESH_TYPE_PLY:".ply"}
        meshDir = "d:/dltest/tmp/mesh"
        if not os.path.isdir(meshDir):
            os.makedirs(meshDir)
        for roi in roiList:
            meshPath = "%s/%s%s" % (meshDir, roi["roi_name"], extMap[meshType])
            ret = grtv.exportROIMesh(dataID=int(roi["roi_index"]), meshPath=meshPath,
                                     meshType=meshType)
            print(ret)
