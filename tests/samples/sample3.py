# Sample 3 of the pyGRTV API reference v1.9.4J (section 4.3), verbatim apart from the data paths
# ("c:/data/RTSets/", "c:/data/raw3d/"), which the test replaces before running it.
import os, sys, glob, shutil
sys.path.append("C:/Program Files/GrowthRTV/pyGRTV")
from grtv import *
import csv

if __name__ == "__main__":

    grtv = pyGRTV() # GRTV インスタンス生成

    # 複数症例に対する深層学習用 CT および ROI(教師データ)の 3D Raw 出力サンプル
    # 本サンプルでは 3D Raw の出力の際に、3次元補完処理によるダウンサイジング処理の例を含む
    dataRoot = "c:/data/RTSets/"
    expDataRoot = "c:/data/raw3d/"
    if not os.path.isdir(expDataRoot):
        os.makedirs(expDataRoot)

    # データフォルダ一覧取得
    dirList = os.listdir(dataRoot)
    dirList.sort()

    # 各データについて出力処理
    for iData, dirName in enumerate(dirList):
        print("dirName", dirName)

        dirPath = dataRoot + os.sep + dirName
        ret = grtv.readRTDir(dirPath)      # データ読み込み
        if ret == grtv.GRTV_STATUS_FALIED:
            continue

        print("read ct")
        ret, img_short = grtv.readGRTVRaw(grtv.GRTV_DATA_TYPE_IMAGE)  # CT データ読み込み
        newShape = (img_short.shape[0], 256, 256)

        flInfoCsv = "%s/%04d_info.txt" % (expDataRoot, iData)
        with open(flInfoCsv, 'w') as f:
            writer = csv.writer(f, lineterminator='\n')
            writer.writerow(list(newShape))      # サイズ情報のファイル保存
            if False:
                # ボクセル実寸情報をファイルに保存する場合
                paramMap = {}
                ret = grtv.getImageParam(grtv.GRTV_PARAM_IMAGE_RES, paramMap)
                res_z = float(paramMap["res_z"])
                res_y = float(paramMap["res_y"]) * img_short.shape[1] / 256
                res_x = float(paramMap["res_x"]) * img_short.shape[2] / 256
                writer.writerow([res_z, res_y, res_x])

        print("resize ct")
        # CT の 3D データを(originalZ, 256,256)にリサイズ
        ret, img_short_resize = grtv.resizeImage3D(img_short, newShape, dataType=np.int16)
        resizeCTPath = "%s/%04d_ct.raw" % (expDataRoot, iData)
        print("write resized ct")
        grtv.writeRaw(resizeCTPath, img_short_resize, dataType=np.int16)  # リサイズした CT 3D Raw をファイル保存

        # 深層学習用に各 ROI の 3D RAW を書き出し
        # (3D 線形補間によるリサイズ処理のサンプル含む)
        roiList = []
        ret = grtv.getROIList(roiList)
        print(roiList)
        for roi in roiList:
            print(roi["roi_index"], roi["roi_name"])
            # ROI の 3D Raw を取得
            ret, roi_uint8 = grtv.readGRTVRaw(grtv.GRTV_DATA_TYPE_ROI,
                                              dataID=int(roi["roi_index"]))

            # (originalZ, 256,256)にリサイズ
            ret, roi_uint8_resize = grtv.resizeImage3D(roi_uint8, newShape, dataType=np.uint8)

            # リサイズした ROI 3D Raw をファイル保存
            resizeRoiPath = "%s/%04d_%s.raw" % (expDataRoot, iData, roi["roi_name"])
            grtv.writeRaw(resizeRoiPath, roi_uint8_resize, dataType=np.uint8)
