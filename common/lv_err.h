/* Error codes shared by every Levee module: 0 is success, negative is failure. */
#ifndef LV_ERR_H
#define LV_ERR_H

#define LV_OK 0
#define LV_EINVAL -1    /* bad input: reject it, do not retry */
#define LV_ETRANSIENT -2 /* database, redis or peer unavailable: retry later, do not ack */
#define LV_EDUP -3      /* already done: ack, change nothing */
#define LV_ENOMEM -4
#define LV_ELIMIT -5    /* a named limit was exceeded */
#define LV_EIO -6
#define LV_ENOTFOUND -7
#define LV_ESTATE -8    /* the object is not in a state that allows this */

const char *lv_strerror(int code);

#endif
