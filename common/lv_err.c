/* Text for the shared error codes, for logs and operator messages. */
#include "lv_err.h"

const char *lv_strerror(int code)
{
    switch (code) {
    case LV_OK:
        return "成功 (ok)";
    case LV_EINVAL:
        return "输入无效 (invalid input)";
    case LV_ETRANSIENT:
        return "暂时不可用, 稍后重试 (transient failure, retry later)";
    case LV_EDUP:
        return "重复, 已处理 (duplicate, already done)";
    case LV_ENOMEM:
        return "内存不足 (out of memory)";
    case LV_ELIMIT:
        return "超过上限 (limit exceeded)";
    case LV_EIO:
        return "读写错误 (I/O error)";
    case LV_ENOTFOUND:
        return "未找到 (not found)";
    case LV_ESTATE:
        return "状态不允许 (not allowed in the current state)";
    default:
        return "未知错误 (unknown error)";
    }
}
