//! ZooKeeper's wire vocabulary: the jute codec, opcodes, error codes and every record a
//! 3.8 client, server or learner exchanges. One definition per record, shared by the
//! server, the relay, the proxy and the tests.

pub mod frame;
pub mod jute;
pub mod quorum;
pub mod records;
pub mod txn;

pub use jute::{DecodeError, JuteWrite, Reader, Record};

/// Client request opcodes (`ZooDefs.OpCode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum OpCode {
    Notification = 0,
    Create = 1,
    Delete = 2,
    Exists = 3,
    GetData = 4,
    SetData = 5,
    GetAcl = 6,
    SetAcl = 7,
    GetChildren = 8,
    Sync = 9,
    Ping = 11,
    GetChildren2 = 12,
    Check = 13,
    Multi = 14,
    Create2 = 15,
    Reconfig = 16,
    CheckWatches = 17,
    RemoveWatches = 18,
    CreateContainer = 19,
    DeleteContainer = 20,
    CreateTtl = 21,
    MultiRead = 22,
    Auth = 100,
    SetWatches = 101,
    Sasl = 102,
    GetEphemerals = 103,
    GetAllChildrenNumber = 104,
    SetWatches2 = 105,
    AddWatch = 106,
    WhoAmI = 107,
    CreateSession = -10,
    CloseSession = -11,
    Error = -1,
}

impl OpCode {
    pub fn from_i32(v: i32) -> Option<OpCode> {
        use OpCode::*;
        Some(match v {
            0 => Notification,
            1 => Create,
            2 => Delete,
            3 => Exists,
            4 => GetData,
            5 => SetData,
            6 => GetAcl,
            7 => SetAcl,
            8 => GetChildren,
            9 => Sync,
            11 => Ping,
            12 => GetChildren2,
            13 => Check,
            14 => Multi,
            15 => Create2,
            16 => Reconfig,
            17 => CheckWatches,
            18 => RemoveWatches,
            19 => CreateContainer,
            20 => DeleteContainer,
            21 => CreateTtl,
            22 => MultiRead,
            100 => Auth,
            101 => SetWatches,
            102 => Sasl,
            103 => GetEphemerals,
            104 => GetAllChildrenNumber,
            105 => SetWatches2,
            106 => AddWatch,
            107 => WhoAmI,
            -10 => CreateSession,
            -11 => CloseSession,
            -1 => Error,
            _ => return None,
        })
    }

    /// The name ZooKeeper's `Request.op2String` gives, used in logs and `cons`/`dump`.
    pub fn name(self) -> &'static str {
        use OpCode::*;
        match self {
            Notification => "notification",
            Create => "create",
            Delete => "delete",
            Exists => "exists",
            GetData => "getData",
            SetData => "setData",
            GetAcl => "getACL",
            SetAcl => "setACL",
            GetChildren => "getChildren",
            Sync => "sync",
            Ping => "ping",
            GetChildren2 => "getChildren2",
            Check => "check",
            Multi => "multi",
            Create2 => "create2",
            Reconfig => "reconfig",
            CheckWatches => "checkWatches",
            RemoveWatches => "removeWatches",
            CreateContainer => "createContainer",
            DeleteContainer => "deleteContainer",
            CreateTtl => "createTtl",
            MultiRead => "multiRead",
            Auth => "auth",
            SetWatches => "setWatches",
            Sasl => "sasl",
            GetEphemerals => "getEphemerals",
            GetAllChildrenNumber => "getAllChildrenNumber",
            SetWatches2 => "setWatches2",
            AddWatch => "addWatch",
            WhoAmI => "whoAmI",
            CreateSession => "createSession",
            CloseSession => "closeSession",
            Error => "error",
        }
    }
}

/// ZooKeeper's error codes (`KeeperException.Code`), as they travel in a ReplyHeader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[repr(i32)]
pub enum ErrorCode {
    #[error("OK")]
    Ok = 0,
    #[error("SystemError")]
    SystemError = -1,
    #[error("RuntimeInconsistency")]
    RuntimeInconsistency = -2,
    #[error("DataInconsistency")]
    DataInconsistency = -3,
    #[error("ConnectionLoss")]
    ConnectionLoss = -4,
    #[error("MarshallingError")]
    MarshallingError = -5,
    #[error("Unimplemented")]
    Unimplemented = -6,
    #[error("OperationTimeout")]
    OperationTimeout = -7,
    #[error("BadArguments")]
    BadArguments = -8,
    #[error("UnknownSession")]
    UnknownSession = -12,
    #[error("NewConfigNoQuorum")]
    NewConfigNoQuorum = -13,
    #[error("ReconfigInProgress")]
    ReconfigInProgress = -14,
    #[error("APIError")]
    ApiError = -100,
    #[error("NoNode")]
    NoNode = -101,
    #[error("NoAuth")]
    NoAuth = -102,
    #[error("BadVersion")]
    BadVersion = -103,
    #[error("NoChildrenForEphemerals")]
    NoChildrenForEphemerals = -108,
    #[error("NodeExists")]
    NodeExists = -110,
    #[error("NotEmpty")]
    NotEmpty = -111,
    #[error("SessionExpired")]
    SessionExpired = -112,
    #[error("InvalidCallback")]
    InvalidCallback = -113,
    #[error("InvalidACL")]
    InvalidAcl = -114,
    #[error("AuthFailed")]
    AuthFailed = -115,
    #[error("SessionMoved")]
    SessionMoved = -118,
    #[error("NotReadOnly")]
    NotReadOnly = -119,
    #[error("EphemeralOnLocalSession")]
    EphemeralOnLocalSession = -120,
    #[error("NoWatcher")]
    NoWatcher = -121,
    #[error("RequestTimeout")]
    RequestTimeout = -122,
    #[error("ReconfigDisabled")]
    ReconfigDisabled = -123,
    #[error("SessionClosedRequireSaslAuth")]
    SessionClosedRequireSaslAuth = -124,
    #[error("QuotaExceeded")]
    QuotaExceeded = -125,
    #[error("Throttled")]
    Throttled = -127,
}

impl ErrorCode {
    pub fn code(self) -> i32 {
        self as i32
    }

    pub fn from_i32(v: i32) -> Option<ErrorCode> {
        use ErrorCode::*;
        Some(match v {
            0 => Ok,
            -1 => SystemError,
            -2 => RuntimeInconsistency,
            -3 => DataInconsistency,
            -4 => ConnectionLoss,
            -5 => MarshallingError,
            -6 => Unimplemented,
            -7 => OperationTimeout,
            -8 => BadArguments,
            -12 => UnknownSession,
            -13 => NewConfigNoQuorum,
            -14 => ReconfigInProgress,
            -100 => ApiError,
            -101 => NoNode,
            -102 => NoAuth,
            -103 => BadVersion,
            -108 => NoChildrenForEphemerals,
            -110 => NodeExists,
            -111 => NotEmpty,
            -112 => SessionExpired,
            -113 => InvalidCallback,
            -114 => InvalidAcl,
            -115 => AuthFailed,
            -118 => SessionMoved,
            -119 => NotReadOnly,
            -120 => EphemeralOnLocalSession,
            -121 => NoWatcher,
            -122 => RequestTimeout,
            -123 => ReconfigDisabled,
            -124 => SessionClosedRequireSaslAuth,
            -125 => QuotaExceeded,
            -127 => Throttled,
            _ => return None,
        })
    }
}

/// Special xids (`ClientCnxn`): replies carrying these are not answers to a numbered request.
pub mod xid {
    pub const NOTIFICATION: i32 = -1;
    pub const PING: i32 = -2;
    pub const AUTH: i32 = -4;
    pub const SET_WATCHES: i32 = -8;
}

/// Permission bits (`ZooDefs.Perms`).
pub mod perms {
    pub const READ: i32 = 1;
    pub const WRITE: i32 = 2;
    pub const CREATE: i32 = 4;
    pub const DELETE: i32 = 8;
    pub const ADMIN: i32 = 16;
    pub const ALL: i32 = READ | WRITE | CREATE | DELETE | ADMIN;
}
