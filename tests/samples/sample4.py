# Sample 4 of the pyGRTV API reference v1.9.4J (section 4.4), verbatim apart from the data paths
# ("d:/testdata", "d:/auglms"), which the test replaces before running it.
import sys
sys.path.append("C:/Program Files/GrowthRTV/pyGRTV")
from grtv import *

if __name__ == "__main__":

    # GRTV インスタンス生成
    grtv = pyGRTV()

    # データ読み込み
    rtDir = "d:/testdata"
    ret = grtv.readRTDir(rtDir)

    # CT RAW ボリューム取得
    print("read CT")
    ret, ct_short = grtv.readGRTVRaw(grtv.GRTV_DATA_TYPE_IMAGE)

    # 0 番目の ROI(Body)の領域を取得
    print("read Body")
    ret, roi_uint8_Body = grtv.readGRTVRaw(grtv.GRTV_DATA_TYPE_ROI, dataID=0)

    # 5 番目の ROI(LLung)の領域を取得
    print("read LLung")
    ret, roi_uint8_LLung = grtv.readGRTVRaw(grtv.GRTV_DATA_TYPE_ROI, dataID=5)

    # 拡張データリスト(本リストのデータ群は整合性を維持してデータ拡張されます)
    imageList = [ct_short, roi_uint8_Body, roi_uint8_LLung]

    # 各データ名リスト
    fileNameList = ["ct", "body", "llung"]

    print("augmentImg3D")
    ret = grtv.augmentImg3D(imageList=imageList,
                            outputDirectory="d:/auglms",
                            augmentTimes=5,    #5 回拡張を実施
                            fileNameList=fileNameList,
                            rotate=True,      #回転有り
                            rotateAngRange=3.0,  #最大回転角は 3 度
                            deform=True,      #変形有り
                            deformRate=0.05   #最大変形量は 0.05
                            )
