/* See check.h. */
#include "check.h"

#include <string.h>

const char *a2g_check_text(const char *s, size_t len, a2g_text what)
{
    if (memchr(s, '\0', len))
        return "holds a NUL byte";
    if (len == 0 && (what == A2G_TEXT_PATH || what == A2G_TEXT_TOKEN
                     || what == A2G_TEXT_HEADER_NAME))
        return "is empty";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (what) {
        case A2G_TEXT_PLAIN:
        case A2G_TEXT_PATH:
            break;
        case A2G_TEXT_URL:
            if (c <= ' ' || c == 0x7f)
                return "holds a space or a control character";
            break;
        case A2G_TEXT_HEADER_NAME:
            if (c <= ' ' || c >= 0x7f || c == ':')
                return "is not a header name (visible ASCII but ':')";
            break;
        case A2G_TEXT_HEADER:
            if (c == '\r' || c == '\n')
                return "holds CR or LF";
            if ((c < ' ' && c != '\t') || c == 0x7f)
                return "holds a control character";
            break;
        case A2G_TEXT_TOKEN:
            if (c <= ' ' || c >= 0x7f)
                return "holds a character a token cannot have (space, control, non-ASCII)";
            break;
        }
    }
    return NULL;
}
