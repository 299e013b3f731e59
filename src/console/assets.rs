//! The page, its script and its style sheet, compiled into the binary: the console needs no
//! network, no CDN and no build step (docs/console.md). One HTML page serves both `/` and
//! `/login`; the script reads the sign-in key from the URL fragment.

/// One embedded file.
pub struct Asset {
    pub content_type: &'static str,
    pub body: &'static [u8],
}

const INDEX: Asset = Asset {
    content_type: "text/html; charset=utf-8",
    body: include_bytes!("assets/index.html"),
};
const SCRIPT: Asset = Asset {
    content_type: "text/javascript; charset=utf-8",
    body: include_bytes!("assets/console.js"),
};
const STYLE: Asset = Asset {
    content_type: "text/css; charset=utf-8",
    body: include_bytes!("assets/console.css"),
};
const ICON: Asset = Asset {
    content_type: "image/svg+xml",
    body: include_bytes!("assets/icon.svg"),
};

/// The asset served at `path`, if any.
pub fn asset(path: &str) -> Option<&'static Asset> {
    match path {
        "/" | "/login" => Some(&INDEX),
        "/assets/console.js" => Some(&SCRIPT),
        "/assets/console.css" => Some(&STYLE),
        "/assets/icon.svg" | "/favicon.ico" => Some(&ICON),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_page_loads_only_its_own_files() {
        let html = std::str::from_utf8(super::asset("/").expect("index").body).expect("utf-8");
        assert!(html.contains("/assets/console.js") && html.contains("/assets/console.css"));
        // Inline script or style would be blocked by the CSP and is a sign of drift.
        assert!(!html.contains("<script>") && !html.contains("style=\""));
        assert!(!html.contains("http://") && !html.contains("https://"));
        assert!(super::asset("/assets/../x").is_none());
    }
}
