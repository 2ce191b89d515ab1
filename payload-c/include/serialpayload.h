/*
 * serialpayload.h - makes an unchanged C minifilter a payload of the
 * SerialLoader, together with serialpayload.lib.
 *
 * Include it in every source file of the filter WITHOUT editing them: with
 * the compiler's forced include (cl /FI serialpayload.h; clang -include
 * serialpayload.h). It does two things:
 *
 *  1. renames the filter's DriverEntry to SerialPayloadFilterEntry. The
 *     library's DriverEntry becomes the image's; the loader later calls the
 *     library's registration entry, which runs the filter's own DriverEntry
 *     (so the filter's set-up never races an unload);
 *  2. defines the payload descriptor the loader reads before it runs any
 *     code of the image (one definition for the whole image: selectany).
 *
 * Optional, on the compiler's command line:
 *   SERIALPAYLOAD_NAME     display name, a wide string literal of at most
 *                          31 characters (default L"C minifilter")
 *   SERIALPAYLOAD_NAME_ID  the same as a bare identifier (MyFilter), for
 *                          build systems that mangle quotes
 *   SERIALPAYLOAD_VERSION  the filter's own version, shown by
 *                          `loaderctl status` (default 1)
 *
 * The filter's FltRegisterFilter, FltStartFiltering and FltUnregisterFilter
 * calls are interposed by the library at link time (link serialpayload.lib
 * before fltMgr.lib); nothing here declares them. The library's link
 * directives also export its entries and merge the filter's INIT section
 * into PAGE: the filter's DriverEntry runs after the I/O manager would
 * have discarded INIT.
 *
 * Self-contained: needs no other header and may come before the WDK's.
 */
#ifndef SERIALPAYLOAD_H
#define SERIALPAYLOAD_H

#define DriverEntry SerialPayloadFilterEntry

#if !defined(SERIALPAYLOAD_NAME) && defined(SERIALPAYLOAD_NAME_ID)
#define SERIALPAYLOAD_STR2_(x) #x
#define SERIALPAYLOAD_STR_(x) SERIALPAYLOAD_STR2_(x)
#define SERIALPAYLOAD_WIDE2_(s) L##s
#define SERIALPAYLOAD_WIDE_(s) SERIALPAYLOAD_WIDE2_(s)
#define SERIALPAYLOAD_NAME SERIALPAYLOAD_WIDE_(SERIALPAYLOAD_STR_(SERIALPAYLOAD_NAME_ID))
#endif
#ifndef SERIALPAYLOAD_NAME
#define SERIALPAYLOAD_NAME L"C minifilter"
#endif
#ifndef SERIALPAYLOAD_VERSION
#define SERIALPAYLOAD_VERSION 1
#endif

/* The binary contract (docs/abi.md): ABI 1.1 descriptor, 104 bytes. */
#define SERIALPAYLOAD_MAGIC 0x44504C53UL /* 'SLPD' little-endian */
#define SERIALPAYLOAD_ABI_MAJOR 1
#define SERIALPAYLOAD_ABI_MINOR 1
#define SERIALPAYLOAD_DESCRIPTOR_SIZE 104
#define SERIALPAYLOAD_MIN_SERVICES_SIZE 48
#define SERIALPAYLOAD_NAME_CHARS 32

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _SERIALPAYLOAD_DESCRIPTOR {
    unsigned int Size;
    unsigned int Magic;
    unsigned short AbiMajor;
    unsigned short AbiMinor;
    unsigned int PayloadVersion;
    unsigned int MinServicesSize;
    unsigned int Flags;
    unsigned short Name[SERIALPAYLOAD_NAME_CHARS];
    long (__stdcall *Teardown)(void);
    void (__stdcall *Shutdown)(void);
} SERIALPAYLOAD_DESCRIPTOR;

typedef char SerialPayloadDescriptorSizeCheck[(sizeof(SERIALPAYLOAD_DESCRIPTOR) == SERIALPAYLOAD_DESCRIPTOR_SIZE) ? 1 : -1];

/* In serialpayload.lib. */
long __stdcall SerialPayloadTeardown(void);
void __stdcall SerialPayloadShutdown(void);

/* Exported by the library's link directive (not here: no object of the
   filter carries an export). */
__declspec(selectany) const SERIALPAYLOAD_DESCRIPTOR LoaderPayloadDescriptor = {
    SERIALPAYLOAD_DESCRIPTOR_SIZE,
    SERIALPAYLOAD_MAGIC,
    SERIALPAYLOAD_ABI_MAJOR,
    SERIALPAYLOAD_ABI_MINOR,
    SERIALPAYLOAD_VERSION,
    SERIALPAYLOAD_MIN_SERVICES_SIZE,
    0,
    SERIALPAYLOAD_NAME,
    SerialPayloadTeardown,
    SerialPayloadShutdown,
};

#ifdef __cplusplus
}
#endif

#endif /* SERIALPAYLOAD_H */
