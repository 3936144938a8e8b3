---@meta
--- as2gateway.types: LuaLS annotations (never required at run time) for the entities
-- the gateway answers with, the results and option tables of the client's methods, and
-- the workflow methods mixed into every client (drain, wait, send_dir). Field names are
-- the API's own. spec/annotations_spec.lua holds every class here against the code and
-- against the sandbox's answers, so that an editor's completion tells the truth.

-- Errors ------------------------------------------------------------------------------

---@alias as2gateway.ErrorKind "auth"|"ratelimited"|"timeout"|"network"|"tls"|"http"|"notfound"|"invalid"|"unknown_outcome"|"protocol"|"io"|"callback"|"redirect"|"locked"|"interrupted"

-- Options ----------------------------------------------------------------------------

---@class as2gateway.Limits a call's limits (Client:with)
---@field deadline? number seconds each call may take in all, waits and retries included
---@field fail_fast? boolean a call that would wait for the rate limit ends at once with ratelimited

-- Entities (API.md) -------------------------------------------------------------------

---@class as2gateway.Attachment
---@field name string the file name as the partner gave it (never used as a path as it is)
---@field size integer bytes

---@class as2gateway.MdnMessage
---@field persistedTimestamp integer ms since the epoch
---@field mdnError boolean true when the disposition reports an error or a failure
---@field content string the MDN's human-readable text

---@class as2gateway.Message
---@field as2MessageId string "<...@...>", angle brackets included
---@field persistedTimestamp integer ms since the epoch
---@field compressed boolean
---@field encrypted boolean
---@field signed boolean
---@field subject? string absent when the message has none
---@field receiverId string the partner's AS2 ID, on received messages too
---@field senderId string your station's AS2 ID, on received messages too
---@field transportStatusReceived? integer outbound entries (sent, failed): the partner's HTTP status
---@field deliveryStatus? string outbound entries: "Delivered", "Not Delivered" or "No Status"
---@field mdnStatus string "Pending", "Received", "Not Requested" or "No MDN"
---@field partnerType string "Production" or "Test"
---@field mdnMessage? as2gateway.MdnMessage
---@field attachments? as2gateway.Attachment[] a queued entry may lack them

---@class as2gateway.Page
---@field totalRecords integer every record of the listing, not of this page
---@field records as2gateway.Message[]

---@class as2gateway.CertificateRef
---@field id integer

---@class as2gateway.CustomHeader
---@field headerKey string
---@field headerValue string

---@class as2gateway.Partner
---@field partnerId integer
---@field as2Identifier string
---@field name string
---@field description string
---@field uri string
---@field messageSubject string
---@field encryptionAlgorithm string
---@field signDigestAlgorithm string
---@field signEncryptAlgorithm string
---@field encryptCert as2gateway.CertificateRef
---@field signCert as2gateway.CertificateRef
---@field useDiffCertAsSignCert boolean
---@field httpsCert as2gateway.CertificateRef
---@field encryptMessages boolean
---@field signMessage boolean
---@field compressAfter boolean
---@field compressBefore boolean
---@field precompressInputFiles boolean
---@field requestAsyncMdn boolean
---@field requestMdn boolean
---@field requestSignedMdn boolean
---@field requestHttpsMdn boolean
---@field customHeaders as2gateway.CustomHeader[]
---@field useAs2Restart boolean
---@field pauseIncoming boolean
---@field pauseOutgoing boolean
---@field sendTimeout integer seconds
---@field flows string[] as the gateway lists them
---@field partnerType string "Production" or "Test"
---@field isGlobalPartner boolean
---@field pinned boolean

---@class as2gateway.Station
---@field id integer
---@field as2Identifier string
---@field name string
---@field comments string
---@field email string
---@field certificate as2gateway.CertificateRef
---@field sftpStructure integer
---@field emailNotifications boolean
---@field sendFailureEmails boolean
---@field sendMdnFailureEmails boolean
---@field pinned boolean

---@class as2gateway.Ack
---@field message string the gateway's Generic Response, e.g. "Deleted 3 messages"

-- Results -----------------------------------------------------------------------------

---@class as2gateway.SendResult
---@field message? string the gateway's acknowledgement
---@field link? string the URL the sent message will have (give it to client:wait)
---@field as2MessageId? string the new message's AS2 message ID (from the link)
---@field station string the station's AS2 ID it was sent from
---@field partner string the partner's AS2 ID it was sent to
---@field subject? string
---@field partnerType? "production"|"test"
---@field warning? string the answer was not all the contract says (no JSON body, no Link): what is missing

---@class as2gateway.SinkResult
---@field status integer HTTP status
---@field filename? string from Content-Disposition, not sanitised
---@field content_type? string
---@field bytes number bytes handed to the sink

---@class as2gateway.BatchResult
---@field folder? string the message's folder under `to`
---@field paths string[] its attachments on disk, in the record's order
---@field err? as2gateway.Error why (some of) it could not be fetched
---@field answered? boolean the gateway answered for it (it may have marked it read)

---@class as2gateway.RefusedEntry
---@field entry string the zip entry's name
---@field reason string
---@field id? string the requested ID it belongs to

---@class as2gateway.BatchReport
---@field refused as2gateway.RefusedEntry[]
---@field err? as2gateway.Error the error that stopped the download early (the disk, say)

---@class as2gateway.DrainSummary
---@field messages integer messages seen unfinished by this drain
---@field done integer handed to the handler successfully
---@field failed integer
---@field errors table<string, as2gateway.Error> by AS2 message ID

---@class as2gateway.SendDirEntry
---@field files string[] the paths sent as this message
---@field state? "sent"|"refused"|"unsent"|"unknown"
---@field as2MessageId? string
---@field link? string
---@field err? as2gateway.Error
---@field warning? as2gateway.Error an accepted send's answer was incomplete
---@field resolved? boolean an earlier run's unknown outcome, decided in this one
---@field moved? string[] where the files were moved (move_to)
---@field record? table its journal record (see client:send_journal)

---@class as2gateway.SendDirTotals what a send_dir report (a list of SendDirEntry) also holds
---@field settled integer files sent in earlier runs
---@field refused string[] paths refused in earlier runs, not sent again
---@field journal string the journal's path

---@class as2gateway.Stats
---@field requests integer HTTP requests started, /authorize included
---@field retries integer
---@field authorizations integer
---@field reauthentications integer
---@field ratelimited integer 429 answers received
---@field waits integer times a request waited for the rate limit
---@field waited number seconds waited for it in all
---@field tokens_shared integer tokens taken from the shared quota backend (another process's login)
---@field login_waits integer times a request waited for another process's login
---@field quota as2gateway.QuotaState the quota backend in use

---@class as2gateway.QuotaState
---@field backend string "window" (this process's), "hooks" (acquire/release), "file", "redis" or "none"
---@field mode string the backend's; Redis: "redis", "fallback" (its local share) or "dual" (just back)
---@field fallbacks? integer Redis: times it failed over to the local share
---@field returns? integer Redis: times it was used again

---@class as2gateway.Iterator
---@field err? as2gateway.Error the error that ended the loop, if any
---@operator call: as2gateway.Message|nil, as2gateway.Error|nil

-- Parameters and options ----------------------------------------------------------------

---@class as2gateway.ListParams
---@field sortCol? "persistedTimestamp"|"receiverId"|"senderId"|"subject"
---@field sortDir? "asc"|"desc"
---@field partnerType? "production"|"test"
---@field pageOffset? integer a page number, from 0 (not for messages())
---@field pageLength? integer 1 to 100 (default 10)
---@field partnerAS2Id? string not for queued
---@field stationAS2Id? string not for queued
---@field as2MessageId? string not for queued
---@field subject? string not for queued
---@field unreadOnly? boolean received only
---@field query? string queued only: replaces the four filters

---@class as2gateway.GetParams
---@field markAsRead? boolean received only

---@class as2gateway.FileSpec
---@field name string the attachment's name
---@field path? string a file to send ...
---@field data? string ... or the bytes themselves
---@field content_type? string none: the gateway detects it

---@class as2gateway.SendParams
---@field partnerType? "production"|"test"
---@field subject? string
---@field profile? string a message submission profile

---@class as2gateway.DownloadOptions
---@field index? integer the attachment, from 0 (default 0)
---@field all? boolean every attachment: extracted when `to` is a folder
---@field to? string a file path, or an existing folder (the gateway's name, sanitised)
---@field sink? fun(chunk: string) instead of `to`
---@field markAsRead? boolean received only
---@field overwrite? boolean replace an existing file (default: never)

---@class as2gateway.MdnOptions
---@field to? string a file path or a folder
---@field sink? fun(chunk: string)
---@field markAsRead? boolean received only
---@field overwrite? boolean

---@class as2gateway.BatchOptions
---@field to string an existing folder: one folder per message in it
---@field markAsRead? boolean
---@field overwrite? boolean
---@field max_entry_bytes? integer largest attachment extracted (64 MiB)
---@field records? table<string, as2gateway.Message> ID -> record: entries named by it
---@field before_fetch? fun(ids: string[]): boolean|nil, as2gateway.Error|nil before each request
---@field on_done? fun(ids: string[], results: table<string, as2gateway.BatchResult>): boolean|nil, as2gateway.Error|nil after each answer

---@class as2gateway.DrainOptions
---@field to string the folder (made when missing)
---@field handler? fun(message: as2gateway.Message, paths: string[]): boolean|nil false or an error: not done
---@field partnerType? "production"|"test"|"all" default "all"
---@field filters? as2gateway.ListParams more listing filters
---@field lock_wait? number seconds to wait for another drain of `to` (0)
---@field max_entry_bytes? integer

---@class as2gateway.WaitOptions
---@field timeout? number seconds (300)
---@field initial? number seconds before the first look (2)
---@field interval? number longest pause between looks (30)
---@field mdn? boolean also wait until the MDN is no longer Pending
---@field first_failure? boolean return the first failed attempt as "failed"
---@field grace? number seconds an ID may be in no list before it is notfound (30)
---@field settle? number seconds a message may be between lists (10)
---@field partnerType? "production"|"test" the partner's type (else from the target or the first entry seen)

---@class as2gateway.SendDirParams
---@field partnerType? "production"|"test"
---@field subject? string
---@field profile? string
---@field group? integer files per message, 1 to 10 (1)
---@field content_type? string the Content-Type of every file (default: none, the gateway detects it)
---@field move_to? boolean|string move each sent file to `<dir>/sent` (true) or this folder
---@field retry_refused? boolean send files the gateway refused in an earlier run again
---@field lock_timeout? number seconds to wait for another run on the folder (0)
---@field resolve? as2gateway.ResolveOptions how unknown outcomes are resolved

---@class as2gateway.ResolveOptions
---@field max_processing? number seconds a send may keep a message out of every listing (120)
---@field skew? number seconds the clocks of client and gateway may differ (300)
---@field timeout? number seconds a matching queued entry without attachments may stay undecided (120)
---@field exclude? table<string, boolean> AS2 message IDs that are other sends'

---@class as2gateway.SettleOptions
---@field lock_timeout? number seconds to wait for another run on the folder (0)
---@field max_processing? number
---@field skew? number
---@field timeout? number

-- The workflow methods, mixed into every client by as2gateway.workflows ---------------

---@class as2gateway.Client
---@field drain fun(self: as2gateway.Client, opts: as2gateway.DrainOptions): as2gateway.DrainSummary|nil, as2gateway.Error|nil, as2gateway.DrainSummary|nil
---@field wait fun(self: as2gateway.Client, target: string|table, opts?: as2gateway.WaitOptions): as2gateway.Message|nil, string|as2gateway.Error, table|nil
---@field send_dir fun(self: as2gateway.Client, station: string, partner: string, dir: string, params?: as2gateway.SendDirParams): as2gateway.SendDirEntry[]|nil, as2gateway.Error|nil the entries, with as2gateway.SendDirTotals
---@field resolve fun(self: as2gateway.Client, record: table, opts?: as2gateway.ResolveOptions): table|false|nil, string|as2gateway.Error
---@field send_journal fun(self: as2gateway.Client, dir: string): table[]|nil, as2gateway.Error|nil
---@field settle fun(self: as2gateway.Client, dir: string, opts?: as2gateway.SettleOptions): as2gateway.SendDirEntry[]|nil, as2gateway.Error|nil

return {}
