// The bypass matrix's servlet application in embedded Tomcat 10 (Debian's
// libtomcat10-embed-java): servlet mappings /admin/*, /healthz, /public/*
// and the default servlet for the rest. Tomcat removes `;` path parameters
// before mapping. usage: java BypassApp PORT BASEDIR
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import org.apache.catalina.Context;
import org.apache.catalina.startup.Tomcat;

public class BypassApp {
    static final String[] OVERRIDES = {"x-original-url", "x-rewrite-url", "x-http-method-override", "x-http-method", "x-method-override"};

    static class Handler extends HttpServlet {
        final String name;

        Handler(String name) {
            this.name = name;
        }

        @Override
        protected void service(HttpServletRequest req, HttpServletResponse resp) throws IOException {
            List<String> received = new ArrayList<>();
            for (String h : OVERRIDES) {
                if (req.getHeader(h) != null) {
                    received.add(h);
                }
            }
            String path = req.getServletPath() + (req.getPathInfo() == null ? "" : req.getPathInfo());
            resp.setContentType("application/json");
            resp.getWriter().write("{\"backend\":\"tomcat\",\"handler\":\"" + name + "\",\"path\":\"" + escape(path)
                    + "\",\"method\":\"" + escape(req.getMethod()) + "\",\"overrides\":\"" + String.join(",", received) + "\"}");
        }
    }

    static String escape(String s) {
        StringBuilder b = new StringBuilder();
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') {
                b.append('\\').append(c);
            } else if (c < 0x20 || c > 0x7e) {
                b.append(String.format("\\u%04x", (int) c));
            } else {
                b.append(c);
            }
        }
        return b.toString();
    }

    public static void main(String[] args) throws Exception {
        Tomcat tomcat = new Tomcat();
        tomcat.setBaseDir(args[1]);
        tomcat.setPort(Integer.parseInt(args[0]));
        tomcat.getConnector().setProperty("address", "127.0.0.1");
        Context ctx = tomcat.addContext("", null);
        String[][] mappings = {{"admin", "/admin/*"}, {"health", "/healthz"}, {"public", "/public/*"}, {"app", "/"}};
        for (String[] m : mappings) {
            Tomcat.addServlet(ctx, m[0], new Handler(m[0])).addMapping(m[1]);
        }
        tomcat.start();
        System.out.println("listening on 127.0.0.1:" + args[0]);
        tomcat.getServer().await();
    }
}
