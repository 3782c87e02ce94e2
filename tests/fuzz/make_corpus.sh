#!/usr/bin/env bash
# Writes the seed corpora in corpus/<target>/: a few valid inputs per
# fuzzer (and a few near misses), so libFuzzer starts from the shapes the
# decoders accept instead of guessing protobuf framing from nothing.
# Protobuf seeds are encoded from text format with `protoc --encode`.
# Run it after changing the proto or the limits, and commit its output:
#   tests/fuzz/make_corpus.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
proto_dir="$here/../../proto"
out="$here/corpus"
rm -rf "$out"
mkdir -p "$out"/{url_normalize,url_redact,header_allowed,request_download,request_small,httphdr,config,jobstore}

n=0
text() { # target, content
  n=$((n + 1))
  printf '%s' "$2" >"$out/$1/seed-$n"
}
# message type, target, text format[, prefix byte as \ooo]
encode() {
  n=$((n + 1))
  local f="$out/$2/seed-$n"
  printf "${4:-}" >"$f"
  printf '%s\n' "$3" | protoc --encode="retriever.v1.$1" -I "$proto_dir" \
    retriever/v1/retriever.proto >>"$f"
}

for u in \
  'http://example.com/a/b' 'HTTPS://User:Pw@Example.COM:443/a/%7e%2f?q=1#f' \
  'http://[fe80::1%25eth0]:8080/x' 'file:///tmp/a%20b' 'http://h/a/%2e%2E/b' \
  'ftp://h/x' 'http://h:0/' 'http://h/%zz'; do
  text url_normalize "$u"
done
for u in \
  'https://user:pw@h/x?a=1&X-Amz-Signature=abc&b=2' 'http://h/x?token=a?b&c=d#access_token=t' \
  'user:pw@host/x?sig=1' 'http://h/?X%2DAmz%2DCredential=c;api_key=k' 'not a url'; do
  text url_redact "$u"
done
for h in 'Authorization: Bearer abc' 'X-Empty:' 'Range: bytes=0-1' 'Bad Name: x' $'X: a\r\nb'; do
  text header_allowed "$h"
done

encode DownloadRequest request_download '
sources { url: "https://example.com/file.iso" destination: "/tmp/file.iso"
          sha256: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" }
priority: 5 detach: true connections: 16'
encode DownloadRequest request_download '
sources { url: "http://u:p@h:8080/a?token=x" destination: "/tmp/a"
          headers { name: "Authorization" value: "Bearer abc" }
          headers { name: "X-Trace" value: "1" } }
sources { url: "file:///etc/hostname" }'
encode DownloadRequest request_download '
sources { url: "http://h/1" destination: "/tmp/same" }
sources { url: "http://h/2" destination: "/tmp/same" }'
encode DownloadRequest request_download '
sources { url: "http://h/x" destination: "/tmp/../x" headers { name: "Range" value: "bytes=0-" } }'
encode DownloadRequest request_download 'detach: true'

id='job_id: "0123456789abcdef0123456789abcdef"'
encode StatusRequest request_small "$id" '\000'
encode CancelRequest request_small "$id" '\001'
encode WatchRequest request_small 'job_id: "0123456789ABCDEF"' '\002'
encode ReadRequest request_small "$id object_index: 3 offset: 1048576" '\003'
encode ListRequest request_small 'states: JOB_STATE_RUNNING states: JOB_STATE_DONE limit: 20' '\004'
encode ListRequest request_small 'states: JOB_STATE_UNSPECIFIED' '\004'
encode StatsRequest request_small '' '\005'
encode PingRequest request_small '' '\006'
# httphdr: the first byte picks the parser (fuzz_httphdr.c).
hdr() { # selector byte as \ooo, content
  n=$((n + 1))
  printf "$1" >"$out/httphdr/seed-$n"
  printf '%s' "$2" >>"$out/httphdr/seed-$n"
}
for h in $'Content-Range: bytes 0-99/1000\r\n' $'ETag:  "abc" \r\n' $'X:\r\n' \
  'HTTP/1.1 200 OK: x' $'Retry-After:\t120'; do
  hdr '\000' "$h"
done
for h in $'HTTP/1.1 206 Partial Content\r\n' 'HTTP/2 200' 'HTTP/1.0 099 x'; do
  hdr '\001' "$h"
done
for h in 'bytes 0-1048575/41943047' 'bytes */100' 'bytes 5-9/*' 'BYTES 1-0/2' \
  'bytes 0-18446744073709551614/18446744073709551615'; do
  hdr '\002' "$h"
done
for h in '120' 'Sun, 06 Nov 1994 08:49:37 GMT' 'Sunday, 06-Nov-94 08:49:37 GMT' \
  'Sun Nov  6 08:49:37 1994' 'Fri, 31 Dec 9999 23:59:59 GMT' 'Mon, 29 Feb 2100 00:00:00 GMT' \
  '99999999999999999999999'; do
  hdr '\003' "$h"
done
for h in '0' '18446744073709551615' '18446744073709551616' '007'; do
  hdr '\004' "$h"
done
for h in 'Content-Range' 'ETAG' 'retry-after'; do
  hdr '\005' "$h"
done
# config: whole config files. The shipped example with every key set, then
# a few shapes the parser must refuse or trim.
n=$((n + 1))
sed -n 's/^#\([a-z-]* *=\)/\1/p' "$here/../../packaging/retrieverd.conf" >"$out/config/seed-$n"
for c in $'# only a comment\n\n' $'  state-dir\t=  /var/lib/r//  \r\nlog-level=debug' \
  $'cache-quota = 1.5T\nchunk-size = 64K\nsocket-mode = 0660' $'max-running-jobs = 0' \
  $'foo = 1' $'state-dir = /a\nstate-dir = /b' $'no equals sign' $'config = /x'; do
  text config "$c"
done
# jobstore: flags, then fields of a 2-byte little-endian length each
# (fuzz_jobstore.c): request, groups, id, objects' texts.
for j in \
  '\005\003\000abc\010\000\350\003\000\000\351\003\000\000\002\000id\002\000ff\010\000a1b2c3d4\003\000err' \
  '\001\000\000\000\000\000\000' '\003\004\000\012\002\010\001' \
  '\001\002\000xy\005\000\001\002\003\004\005' \
  '\000\034\000nonce-nonce-ciphertext-tag!!\000\000\004\000j-id' '\014\001\000z'; do
  n=$((n + 1))
  printf "$j" >"$out/jobstore/seed-$n"
done
# httphdr's Content-Disposition (selector 6), last so that the seeds above
# keep their numbers.
for h in 'attachment; filename="a b.txt"' "attachment; filename*=UTF-8''%C3%A9t%C3%A9.txt" \
  'inline; filename=../../x; filename*=utf-8'"'en'"'%2F..%00' 'attachment; filename=".\\a"'; do
  hdr '\006' "$h"
done
echo "seeds written to $out"
