# Sample 2 of the pyGRTV API reference v1.9.4J (section 4.2), verbatim apart from the data paths
# ("c:/data/CTSets/", "c:/data/export/"), which the test replaces before running it.
import os, sys, glob, shutil
sys.path.append("C:/Program Files/GrowthRTV/pyGRTV")
from grtv import *

if __name__ == "__main__":

    # GRTV インスタンス生成
    grtv = pyGRTV()

    # 複数症例に対する臓器抽出～RT エクスポートまでのサンプルコード
    dataRoot = "c:/data/CTSets/"
    expDataRoot = "c:/data/export/"
    if not os.path.isdir(expDataRoot):
        os.makedirs(expDataRoot)

    dirList = os.listdir(dataRoot)
    exportedDirList = os.listdir(expDataRoot)
    for dirName in dirList:
        if dirName in exportedDirList or "export" == dirName:
            continue
        print("dirName", dirName)

        # データ読み込み
        dirPath = dataRoot + dirName
        ret = grtv.readRTDir(dirPath)
        if ret == grtv.GRTV_STATUS_FALIED:
            continue

        # ROI 自動抽出サンプルコード
        roiList, definedRoiNames = [], []
        ret = grtv.getROIList(roiList)
        # for roi in roiList:
        #     definedRoiNames.append(roi["roi_name"])
        if ("rlung" not in definedRoiNames):
            ret = grtv.predNewROI("rlung", (0, 255, 0)) # right lung 自動抽出
            print(ret)
        if ("llung" not in definedRoiNames):
            ret = grtv.predNewROI("llung", (0, 0, 255)) # left lung 自動抽出
            print(ret)

        ##### merge as rlung and llung as total lung
        roiList = []
        ret = grtv.getROIList(roiList)
        print(roiList)
        roild1, roild2 = -1, -1
        for roi in roiList:
            if (roi["roi_name"] == "rlung"):
                roild1 = int(roi["roi_index"])
            if (roi["roi_name"] == "llung"):
                roild2 = int(roi["roi_index"])

        if roild1 < 0 or roild2 < 0:
            continue
        print("read rlung")
        ret, roi_uint8_LLung = grtv.readGRTVRaw(grtv.GRTV_DATA_TYPE_ROI, dataID=roild1) # 自動抽出された right lung の領域を取得
        print("read llung")
        ret, roi_uint8_Heart = grtv.readGRTVRaw(grtv.GRTV_DATA_TYPE_ROI, dataID=roild2) # 自動抽出された left lung の領域を取得
        # merge
        roi_new = roi_uint8_LLung.astype("int") + roi_uint8_Heart.astype("int") # 領域をマージ
        roi_new = np.clip(roi_new, 0, 255).astype("uint8")
        # Set to GRTV
        print("set merged roi")
        ret = grtv.setNewROI(roi_new, "Lung", (255, 255, 0)) # マージされた領域を Lung として定義

        # 新たな RT データとしてエクスポート
        print(ret, "export rt")
        exportDir = expDataRoot + dirName
        if not os.path.isdir(exportDir):
            os.makedirs(exportDir)
        ret = grtv.exportRT(exportDir)
