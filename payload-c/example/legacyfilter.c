/*++

Module Name:

    legacyfilter.c

Abstract:

    An example legacy minifilter, written the way WDK minifilters were
    written for Windows 7: one global data structure, a registration with
    operation and context registrations, pre-create and post-create
    callbacks, a stream context per opened stream that keeps the stream's
    file name and counts its opens, FltGetFileNameInformation, PAGED_CODE
    and ALLOC_PRAGMA. DriverEntry registers and starts filtering; the
    FilterUnloadCallback unregisters and frees the global state.

    The same source builds twice (see Makefile): plainly, as a legacy
    minifilter image (legacy.sys), and relinked with serialpayload.lib as a
    payload of the SerialLoader (relinked.sys). Not one line of it knows.

Environment:

    Kernel mode, Windows 7 and later.

--*/

#include <fltKernel.h>
#include <dontuse.h>
#include <suppress.h>

#pragma prefast(disable:__WARNING_ENCODE_MEMBER_FUNCTION_POINTER, "Not valid for kernel mode drivers")

#define LF_STATS_TAG 'tSfL'
#define LF_CONTEXT_TAG 'xCfL'
#define LF_NAME_CHARS 64

#define LF_PRINT(_fmt, ...) \
    DbgPrintEx(DPFLTR_IHVDRIVER_ID, DPFLTR_INFO_LEVEL, "legacyfilter: " _fmt "\n", __VA_ARGS__)

//
//  The stream context: the stream's name (its final component) and how
//  many times it was opened while the filter watched.
//

typedef struct _LF_STREAM_CONTEXT {
    LONG OpenCount;
    USHORT NameLength;
    WCHAR Name[LF_NAME_CHARS];
} LF_STREAM_CONTEXT, *PLF_STREAM_CONTEXT;

//
//  Counters kept for the whole filter, allocated in DriverEntry.
//

typedef struct _LF_STATISTICS {
    volatile LONG CreatesSeen;
    volatile LONG CreatesSucceeded;
    volatile LONG ContextsCreated;
    volatile LONG ContextsCleanedUp;
} LF_STATISTICS, *PLF_STATISTICS;

//
//  The filter's global data.
//

typedef struct _LF_GLOBAL_DATA {
    PDRIVER_OBJECT DriverObject;
    PFLT_FILTER Filter;
    PLF_STATISTICS Statistics;
} LF_GLOBAL_DATA, *PLF_GLOBAL_DATA;

LF_GLOBAL_DATA Globals;

/*************************************************************************
    Prototypes
*************************************************************************/

DRIVER_INITIALIZE DriverEntry;
NTSTATUS
DriverEntry (
    _In_ PDRIVER_OBJECT DriverObject,
    _In_ PUNICODE_STRING RegistryPath
    );

NTSTATUS
LfUnload (
    _In_ FLT_FILTER_UNLOAD_FLAGS Flags
    );

NTSTATUS
LfInstanceSetup (
    _In_ PCFLT_RELATED_OBJECTS FltObjects,
    _In_ FLT_INSTANCE_SETUP_FLAGS Flags,
    _In_ DEVICE_TYPE VolumeDeviceType,
    _In_ FLT_FILESYSTEM_TYPE VolumeFilesystemType
    );

FLT_PREOP_CALLBACK_STATUS
LfPreCreate (
    _Inout_ PFLT_CALLBACK_DATA Data,
    _In_ PCFLT_RELATED_OBJECTS FltObjects,
    _Flt_CompletionContext_Outptr_ PVOID *CompletionContext
    );

FLT_POSTOP_CALLBACK_STATUS
LfPostCreate (
    _Inout_ PFLT_CALLBACK_DATA Data,
    _In_ PCFLT_RELATED_OBJECTS FltObjects,
    _In_opt_ PVOID CompletionContext,
    _In_ FLT_POST_OPERATION_FLAGS Flags
    );

VOID
LfStreamContextCleanup (
    _In_ PFLT_CONTEXT Context,
    _In_ FLT_CONTEXT_TYPE ContextType
    );

static NTSTATUS
LfGetOrCreateStreamContext (
    _In_ PFLT_CALLBACK_DATA Data,
    _In_ PCFLT_RELATED_OBJECTS FltObjects,
    _Outptr_ PLF_STREAM_CONTEXT *StreamContext
    );

//
//  Assign text sections for each routine.
//

#ifdef ALLOC_PRAGMA
#pragma alloc_text(INIT, DriverEntry)
#pragma alloc_text(PAGE, LfUnload)
#pragma alloc_text(PAGE, LfInstanceSetup)
#pragma alloc_text(PAGE, LfPreCreate)
#endif

/*************************************************************************
    Registration
*************************************************************************/

CONST FLT_CONTEXT_REGISTRATION ContextRegistration[] = {

    { FLT_STREAM_CONTEXT,
      0,
      LfStreamContextCleanup,
      sizeof( LF_STREAM_CONTEXT ),
      LF_CONTEXT_TAG },

    { FLT_CONTEXT_END }
};

CONST FLT_OPERATION_REGISTRATION Callbacks[] = {

    { IRP_MJ_CREATE,
      0,
      LfPreCreate,
      LfPostCreate },

    { IRP_MJ_OPERATION_END }
};

CONST FLT_REGISTRATION FilterRegistration = {

    sizeof( FLT_REGISTRATION ),         //  Size
    FLT_REGISTRATION_VERSION,           //  Version
    0,                                  //  Flags

    ContextRegistration,                //  Context
    Callbacks,                          //  Operation callbacks

    LfUnload,                           //  FilterUnload

    LfInstanceSetup,                    //  InstanceSetup
    NULL,                               //  InstanceQueryTeardown
    NULL,                               //  InstanceTeardownStart
    NULL,                               //  InstanceTeardownComplete

    NULL,                               //  GenerateFileName
    NULL,                               //  NormalizeNameComponent
    NULL                                //  NormalizeContextCleanup
};

/*************************************************************************
    Initialization and unload
*************************************************************************/

NTSTATUS
DriverEntry (
    _In_ PDRIVER_OBJECT DriverObject,
    _In_ PUNICODE_STRING RegistryPath
    )
/*++

Routine Description:

    Allocates the global statistics, registers with FltMgr and starts
    filtering.

Return Value:

    STATUS_SUCCESS, or why it failed (nothing is left behind then).

--*/
{
    NTSTATUS status;

    UNREFERENCED_PARAMETER( RegistryPath );

    Globals.DriverObject = DriverObject;
    Globals.Filter = NULL;
    Globals.Statistics = ExAllocatePoolWithTag( NonPagedPool,
                                                sizeof( LF_STATISTICS ),
                                                LF_STATS_TAG );
    if (Globals.Statistics == NULL) {

        return STATUS_INSUFFICIENT_RESOURCES;
    }
    RtlZeroMemory( Globals.Statistics, sizeof( LF_STATISTICS ) );

    status = FltRegisterFilter( DriverObject,
                                &FilterRegistration,
                                &Globals.Filter );

    if (NT_SUCCESS( status )) {

        status = FltStartFiltering( Globals.Filter );

        if (!NT_SUCCESS( status )) {

            LF_PRINT( "FltStartFiltering failed 0x%08x", status );
            FltUnregisterFilter( Globals.Filter );
        }
    }

    if (!NT_SUCCESS( status )) {

        PLF_STATISTICS statistics = InterlockedExchangePointer( (PVOID *)&Globals.Statistics, NULL );

        if (statistics != NULL) {

            ExFreePoolWithTag( statistics, LF_STATS_TAG );
        }
        return status;
    }

    LF_PRINT( "filtering (%s)", "DriverEntry done" );
    return STATUS_SUCCESS;
}

NTSTATUS
LfUnload (
    _In_ FLT_FILTER_UNLOAD_FLAGS Flags
    )
/*++

Routine Description:

    Unregisters the filter (which waits for its callbacks and frees its
    contexts) and frees the global statistics.

--*/
{
    PLF_STATISTICS statistics;

    PAGED_CODE();

    LF_PRINT( "FilterUnloadCallback, flags 0x%x", Flags );

    FltUnregisterFilter( Globals.Filter );

    statistics = InterlockedExchangePointer( (PVOID *)&Globals.Statistics, NULL );
    if (statistics != NULL) {

        LF_PRINT( "creates seen %ld, contexts created %ld, cleaned up %ld",
                  statistics->CreatesSeen,
                  statistics->ContextsCreated,
                  statistics->ContextsCleanedUp );
        ExFreePoolWithTag( statistics, LF_STATS_TAG );
    }

    return STATUS_SUCCESS;
}

NTSTATUS
LfInstanceSetup (
    _In_ PCFLT_RELATED_OBJECTS FltObjects,
    _In_ FLT_INSTANCE_SETUP_FLAGS Flags,
    _In_ DEVICE_TYPE VolumeDeviceType,
    _In_ FLT_FILESYSTEM_TYPE VolumeFilesystemType
    )
/*++

Routine Description:

    Attaches to every volume.

--*/
{
    UNREFERENCED_PARAMETER( FltObjects );
    UNREFERENCED_PARAMETER( Flags );
    UNREFERENCED_PARAMETER( VolumeFilesystemType );

    PAGED_CODE();

    if (VolumeDeviceType == FILE_DEVICE_CD_ROM_FILE_SYSTEM) {

        return STATUS_FLT_DO_NOT_ATTACH;
    }

    return STATUS_SUCCESS;
}

/*************************************************************************
    Operation callbacks
*************************************************************************/

FLT_PREOP_CALLBACK_STATUS
LfPreCreate (
    _Inout_ PFLT_CALLBACK_DATA Data,
    _In_ PCFLT_RELATED_OBJECTS FltObjects,
    _Flt_CompletionContext_Outptr_ PVOID *CompletionContext
    )
/*++

Routine Description:

    Every create gets a post-create callback, except volume opens.

--*/
{
    UNREFERENCED_PARAMETER( FltObjects );

    PAGED_CODE();

    *CompletionContext = NULL;

    if (FlagOn( Data->Iopb->OperationFlags, SL_OPEN_TARGET_DIRECTORY )) {

        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    }

    if (Globals.Statistics != NULL) {

        InterlockedIncrement( &Globals.Statistics->CreatesSeen );
    }

    return FLT_PREOP_SUCCESS_WITH_CALLBACK;
}

FLT_POSTOP_CALLBACK_STATUS
LfPostCreate (
    _Inout_ PFLT_CALLBACK_DATA Data,
    _In_ PCFLT_RELATED_OBJECTS FltObjects,
    _In_opt_ PVOID CompletionContext,
    _In_ FLT_POST_OPERATION_FLAGS Flags
    )
/*++

Routine Description:

    For a successful create: finds or creates the stream's context, keeps
    the stream's name in it the first time, and counts the open.

--*/
{
    PLF_STREAM_CONTEXT streamContext = NULL;
    NTSTATUS status;

    UNREFERENCED_PARAMETER( CompletionContext );

    if (FlagOn( Flags, FLTFL_POST_OPERATION_DRAINING ) ||
        !NT_SUCCESS( Data->IoStatus.Status ) ||
        Data->IoStatus.Status == STATUS_REPARSE) {

        return FLT_POSTOP_FINISHED_PROCESSING;
    }

    if (Globals.Statistics != NULL) {

        InterlockedIncrement( &Globals.Statistics->CreatesSucceeded );
    }

    status = LfGetOrCreateStreamContext( Data, FltObjects, &streamContext );

    if (NT_SUCCESS( status )) {

        InterlockedIncrement( &streamContext->OpenCount );
        FltReleaseContext( streamContext );

    } else {

        LF_PRINT( "no stream context: 0x%08x", status );
    }

    return FLT_POSTOP_FINISHED_PROCESSING;
}

static NTSTATUS
LfGetOrCreateStreamContext (
    _In_ PFLT_CALLBACK_DATA Data,
    _In_ PCFLT_RELATED_OBJECTS FltObjects,
    _Outptr_ PLF_STREAM_CONTEXT *StreamContext
    )
/*++

Routine Description:

    Returns the stream's context, referenced, creating it (with the
    stream's final name component) if there is none yet.

--*/
{
    PFLT_FILE_NAME_INFORMATION nameInfo = NULL;
    PLF_STREAM_CONTEXT newContext = NULL;
    PLF_STREAM_CONTEXT oldContext = NULL;
    NTSTATUS status;
    USHORT chars;
    USHORT i;

    *StreamContext = NULL;

    status = FltGetStreamContext( FltObjects->Instance,
                                  FltObjects->FileObject,
                                  (PFLT_CONTEXT *)StreamContext );
    if (NT_SUCCESS( status )) {

        return status;
    }

    status = FltAllocateContext( FltObjects->Filter,
                                 FLT_STREAM_CONTEXT,
                                 sizeof( LF_STREAM_CONTEXT ),
                                 NonPagedPool,
                                 (PFLT_CONTEXT *)&newContext );
    if (!NT_SUCCESS( status )) {

        return status;
    }
    RtlZeroMemory( newContext, sizeof( LF_STREAM_CONTEXT ) );

    status = FltGetFileNameInformation( Data,
                                        FLT_FILE_NAME_NORMALIZED | FLT_FILE_NAME_QUERY_DEFAULT,
                                        &nameInfo );
    if (!NT_SUCCESS( status )) {

        nameInfo = NULL;
    }

    if (nameInfo != NULL && NT_SUCCESS( FltParseFileNameInformation( nameInfo ) )) {

        chars = nameInfo->FinalComponent.Length / sizeof( WCHAR );
        if (chars > LF_NAME_CHARS) {

            chars = LF_NAME_CHARS;
        }
        for (i = 0; i < chars; i++) {

            newContext->Name[i] = nameInfo->FinalComponent.Buffer[i];
        }
        newContext->NameLength = chars;
    }

    if (nameInfo != NULL) {

        FltReleaseFileNameInformation( nameInfo );
    }

    status = FltSetStreamContext( FltObjects->Instance,
                                  FltObjects->FileObject,
                                  FLT_SET_CONTEXT_KEEP_IF_EXISTS,
                                  newContext,
                                  (PFLT_CONTEXT *)&oldContext );
    if (NT_SUCCESS( status )) {

        if (Globals.Statistics != NULL) {

            InterlockedIncrement( &Globals.Statistics->ContextsCreated );
        }
        *StreamContext = newContext;
        return STATUS_SUCCESS;
    }

    FltReleaseContext( newContext );

    if (status == STATUS_FLT_CONTEXT_ALREADY_DEFINED && oldContext != NULL) {

        *StreamContext = oldContext;
        return STATUS_SUCCESS;
    }

    return status;
}

VOID
LfStreamContextCleanup (
    _In_ PFLT_CONTEXT Context,
    _In_ FLT_CONTEXT_TYPE ContextType
    )
/*++

Routine Description:

    The Filter Manager frees a stream context: count it.

--*/
{
    UNREFERENCED_PARAMETER( Context );
    UNREFERENCED_PARAMETER( ContextType );

    if (Globals.Statistics != NULL) {

        InterlockedIncrement( &Globals.Statistics->ContextsCleanedUp );
    }
}
