"""TikAPI's /public/check and /public/posts, answered from the username alone."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping

from trawl.sandbox.common import JSON, Reply, between, hash_int, hex_digits, pick, unit

SEC_UID_PREFIX = "MS4wLjABAAAA"


_USERNAME = re.compile(r"[a-z0-9_.]{1,64}")


_VIDEOS_N = re.compile(r"videos_(\d{1,6})")


_NEWEST_VIDEO = 1_735_689_600  # 2025-01-01Z, fixed so output never depends on today's date


_HISTORY_S = 5 * 365 * 86_400  # a big account's videos are squeezed into 5 years: ids stay 19 digits


_BIOS = ("daily vlogs", "food & travel", "link in bio", "jualan online setiap hari", "dance | music", "")


_CAPTIONS = ("new drop today", "try this at home", "unboxing", "day in my life", "review jujur", "POV:")


_TAGS = ("fyp", "foryou", "racunshopee", "tiktokshop", "viral", "ootd", "kuliner")


def encode_sec_uid(username: str) -> str:
    return SEC_UID_PREFIX + base64.urlsafe_b64encode(username.encode()).decode().rstrip("=")


def decode_sec_uid(sec_uid: str) -> str | None:
    """The username a sandbox secUid stands for, or None if it is not one."""
    encoded = sec_uid.removeprefix(SEC_UID_PREFIX)
    try:
        username = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    # urlsafe_b64decode skips stray characters, so only an exact round trip counts
    return username if encode_sec_uid(username) == sec_uid and _USERNAME.fullmatch(username) else None


def user_exists(username: str) -> bool:
    return bool(_USERNAME.fullmatch(username)) and not username.startswith(("ghost", "missing"))


def video_count(username: str) -> int:
    match = _VIDEOS_N.fullmatch(username)
    return int(match.group(1)) if match else between(0, 80, "videos", username)


def _author(username: str) -> JSON:
    return {
        "uniqueId": username,
        "secUid": encode_sec_uid(username),
        "nickname": re.sub(r"[_.]+", " ", username).strip().title() or username,
        "signature": pick(_BIOS, "bio", username),
    }


def tiktok_profile(username: str) -> JSON:
    """`userInfo` for an existing (lower-case) username."""
    followers = int(10 ** (1 + 6 * unit("followers", username)))
    following = between(0, 2_000, "following", username)
    videos = video_count(username)
    user = _author(username) | {
        "id": str(6 * 10**18 + hash_int("user-id", username) % 10**18),
        "verified": unit("verified", username) < 0.1,
        "privateAccount": username.startswith("private"),
        "avatarMedium": f"https://p16-sign.tiktokcdn.com/tos-maliva-avt-0068/{hex_digits('avatar', username)}"
        "~c5_720x720.jpeg",
    }
    stats = {
        "followerCount": followers,
        "followingCount": following,
        "heartCount": followers * between(1, 30, "hearts", username) + videos,
        "diggCount": between(0, 50_000, "diggs", username),
        "videoCount": videos,
        "friendCount": between(0, following, "friends", username),
    }
    return {"user": user, "stats": stats}


def cadence_s(username: str, total: int) -> int:
    return max(2, min(between(3_600, 259_200, "cadence", username), _HISTORY_S // max(total, 1)))


def _create_time(username: str, index: int, cadence: int) -> int:
    # jitter below half the cadence keeps createTime strictly decreasing with the index
    newest = _NEWEST_VIDEO - between(0, 30 * 86_400, "newest", username)
    return newest - index * cadence - hash_int("jitter", username, index) % (cadence // 2)


def first_older(username: str, total: int, cadence: int, cursor_ms: int) -> int:
    low, high = 0, total
    while low < high:
        mid = (low + high) // 2
        if _create_time(username, mid, cadence) * 1000 < cursor_ms:
            high = mid
        else:
            low = mid + 1
    return low


def _video(username: str, index: int, cadence: int, author: JSON) -> JSON:
    created = _create_time(username, index, cadence)
    video_id = str(created << 32 | hash_int("video-id", username, index) & 0xFFFFFFFF)
    plays = int(10 ** (2 + 5 * unit("plays", username, index)))
    stats = {
        "playCount": plays,
        "diggCount": plays * between(1, 20, "diggs", username, index) // 100,
        "commentCount": plays // between(50, 500, "comments", username, index),
        "shareCount": plays // between(100, 2_000, "shares", username, index),
        "collectCount": plays // between(100, 1_000, "collects", username, index),
    }
    cdn = f"https://v16-webapp-prime.tiktok.com/video/tos/alisg/{hex_digits('video', video_id)}"
    caption = f"{pick(_CAPTIONS, 'caption', username, index)} #{pick(_TAGS, 'tag', username, index)}"
    return {
        "id": video_id,
        "desc": caption,
        "createTime": created,
        "author": author,
        "stats": stats,
        "video": {
            "duration": between(5, 180, "duration", username, index),
            "playAddr": f"{cdn}/?mime_type=video_mp4",
            "downloadAddr": f"{cdn}/?mime_type=video_mp4&download=1",
            "videoQuality": "normal",
        },
    }


def tiktok_posts_page(username: str, count: int, cursor: str | None) -> JSON:
    """One page of an existing account's videos, newest first, after `cursor` (createTime in ms)."""
    total = video_count(username)
    cadence = cadence_s(username, total)
    start = first_older(username, total, cadence, int(cursor)) if cursor and int(cursor) else 0
    stop = min(start + count, total)
    author = _author(username)
    items = [_video(username, i, cadence, author) for i in range(start, stop)]
    next_cursor = str(items[-1]["createTime"] * 1000) if items else (cursor or "0")
    return {"status": "success", "itemList": items, "cursor": next_cursor, "hasMore": stop < total}


def tikapi_error(status: int, message: str, **headers: str) -> Reply:
    return Reply(status, {"status": "error", "message": message}, headers=dict(headers))


def tikapi_check(params: Mapping[str, str], usernames_by_id: Mapping[str, str]) -> Reply:
    """`GET /public/check` after the key check."""
    username = params.get("username", "").strip().lower()
    user_id = params.get("user_id", "").strip()
    if not username and not user_id:
        return tikapi_error(400, "username or user_id is required")
    username = username or usernames_by_id.get(user_id, "")
    if not user_exists(username):
        return tikapi_error(404, "User not found")
    return Reply(200, {"status": "success", "message": "", "userInfo": tiktok_profile(username)})


def tikapi_posts(params: Mapping[str, str]) -> Reply:
    """`GET /public/posts` after the key check."""
    sec_uid = params.get("secUid", "")
    count = params.get("count", "30")
    cursor = params.get("cursor") or None
    if not sec_uid:
        return tikapi_error(400, "secUid is required")
    if not (count.isascii() and count.isdigit() and 1 <= int(count) <= 30):
        return tikapi_error(400, "count must be between 1 and 30")
    if cursor is not None and not (cursor.isascii() and cursor.isdigit()):
        return tikapi_error(400, "cursor must be a string of digits")
    username = decode_sec_uid(sec_uid)
    if username is None or not user_exists(username):
        return tikapi_error(404, "User not found")
    if username.startswith("private"):
        return tikapi_error(403, "This account is private")
    return Reply(200, tiktok_posts_page(username, int(count), cursor))
